import numpy as np

from models.engine.reread import RereadConfig, most_confident, reread, stretch_width


def test_only_doubtful_lines_are_read_again_and_the_most_confident_reading_wins() -> None:
    lines = [np.full((32, w), 255, np.uint8) for w in (100, 200, 300)]
    first = [("SURE", 0.999), ("T0TAL", 0.6), ("CASH", 0.9)]
    asked: list[list[int]] = []

    def read(batch: list[np.ndarray]) -> list[tuple[str, float]]:
        asked.append([line.shape[1] for line in batch])
        # a stretched 200-wide line reads right; the 300-wide one only gets less sure
        return [("TOTAL", 0.95) if line.shape[1] in (260, 290) else ("CA5H", 0.5) for line in batch]

    out = reread(lines, first, read, RereadConfig(below=0.99, stretch=(1.3, 1.45)), max_width=1024)
    assert out == [("SURE", 0.999), ("TOTAL", 0.95), ("CASH", 0.9)]
    assert asked == [[260, 390], [290, 435]]  # the sure line never read again; one call per factor


def test_an_inactive_config_reads_nothing_again() -> None:
    first = [("X", 0.1)]
    calls: list[int] = []
    def read_again(lines: list[np.ndarray]) -> list[tuple[str, float]]:
        calls.append(1)
        return []

    out = reread([np.zeros((32, 40), np.uint8)], first, read_again, RereadConfig(), 1024)
    assert out == first and calls == []
    assert RereadConfig.from_dict({"below": 0.99, "stretch": [1.3]}) == RereadConfig(0.99, (1.3,))


def test_each_decoder_reads_its_own_entry() -> None:
    entry = {"below": 0.99, "stretch": [1.3, 1.45], "greedy": {"below": 0.98, "stretch": [1.45]}}
    assert RereadConfig.from_dict(entry) == RereadConfig(0.99, (1.3, 1.45))
    assert RereadConfig.from_dict(entry, decoder="greedy") == RereadConfig(0.98, (1.45,))
    assert RereadConfig.from_dict({"below": 0.9, "stretch": [1.2]}, decoder="greedy") == RereadConfig(0.9, (1.2,))


def test_stretch_keeps_height_and_respects_the_width_limit() -> None:
    line = np.zeros((32, 800), np.uint8)
    assert stretch_width(line, 1.45, max_width=1024).shape == (32, 1024)
    assert stretch_width(line, 1.1, max_width=1024).shape == (32, 880)


def test_most_confident_ignores_less_confident_alternatives() -> None:
    assert most_confident([("A", 0.8), ("B", 0.7)], [{0: ("AA", 0.5)}, {1: ("BB", 0.75)}]) == [("A", 0.8), ("BB", 0.75)]


def test_the_reread_choice_takes_the_cheapest_setting_within_one_line_of_the_best() -> None:
    from models.training.tune_reread import best_row

    rows = [{"below": 0.0, "stretch": [], "line_exact_ci": 0.860, "reread_share": 0.0},
            {"below": 0.99, "stretch": [1.15, 1.45], "line_exact_ci": 0.874, "reread_share": 0.88},
            {"below": 0.99, "stretch": [1.15], "line_exact_ci": 0.873, "reread_share": 0.44},
            {"below": 0.98, "stretch": [1.3], "line_exact_ci": 0.871, "reread_share": 0.30}]
    assert best_row(rows, lines=677)["stretch"] == [1.15]  # 0.001 below the best: under one line of 677
    assert best_row(rows, lines=100)["stretch"] == [1.3]  # one line is 0.01 here: 0.871 is within it
    assert best_row(rows, lines=10_000)["stretch"] == [1.15, 1.45]
