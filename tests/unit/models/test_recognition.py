import numpy as np
import pytest
import torch

from models.recognition.charset import DEFAULT_CHARS, Charset
from models.recognition.crnn import CRNNConfig, build_crnn
from models.recognition.ctc import greedy_decode


def one_hot_log_probs(paths: list[list[int]], classes: int, p: float = 0.9) -> np.ndarray:
    steps = max(len(path) for path in paths)
    out = np.full((steps, len(paths), classes), np.log((1 - p) / (classes - 1)), np.float32)
    for b, path in enumerate(paths):
        for t in range(steps):
            out[t, b, path[t] if t < len(path) else 0] = np.log(p)
    return out


def test_charset_round_trip_covers_printable_ascii_both_cases() -> None:
    charset = Charset()
    text = "Total RM 12.50 (incl. 6% GST) #A-1/b"
    assert charset.decode(charset.encode(text)) == text
    assert len(charset) == len(DEFAULT_CHARS) + 1 and "a" in DEFAULT_CHARS and "Z" in DEFAULT_CHARS
    assert charset.normalize("Caf\u00e9   au  lait\t") == "Caf au lait"
    with pytest.raises(ValueError, match="not in the charset"):
        charset.encode("\u20ac5")
    assert Charset.from_manifest(charset.to_manifest()).chars == charset.chars


def test_greedy_decode_collapses_repeats_and_drops_blanks() -> None:
    charset = Charset()
    a, b, el = charset.encode("A")[0], charset.encode("B")[0], charset.encode("L")[0]
    # "A A _ B _ L _ L" -> "ABLL": a blank between two L keeps both
    paths = [[a, a, 0, b, 0, el, 0, el], [0, 0, 0]]
    decoded = greedy_decode(one_hot_log_probs(paths, len(charset)), charset)
    assert decoded[0][0] == "ABLL"
    assert decoded[0][1] == pytest.approx(0.9, abs=1e-5)
    assert decoded[1][0] == ""


def test_greedy_decode_respects_lengths_and_rejects_bad_shapes() -> None:
    charset = Charset()
    x = charset.encode("X")[0]
    log_probs = one_hot_log_probs([[x, 0, x, 0, x]], len(charset))
    assert greedy_decode(log_probs, charset, np.array([3]))[0][0] == "XX"
    with pytest.raises(ValueError):
        greedy_decode(log_probs[0], charset)


def test_crnn_maps_width_to_sequence_length() -> None:
    charset = Charset()
    model = build_crnn(CRNNConfig(num_classes=len(charset))).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 1, 32, 128))
    assert out.shape == (32, 2, len(charset))
    assert torch.allclose(out.exp().sum(-1), torch.ones(32, 2), atol=1e-4)
    with pytest.raises(ValueError):
        build_crnn(CRNNConfig(num_classes=10, input_height=48))
