"""Every refusal the API makes, each with its status and a JSON body (code, message)."""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

from producers.samples import render_bill
from tests.integration.api.conftest import FrontDoor
from tests.support.api import api_keys, create_key

GIF = b"GIF89a" + b"\x00" * 64


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body  # type: ignore[no-any-return]


def test_bad_requests_get_their_status_and_a_json_body(front_door: FrontDoor) -> None:
    image = render_bill(["ERRORS", "TOTAL 1.00"])
    with httpx.Client(base_url=front_door.a.url, headers={"Authorization": f"Bearer {front_door.key}"},
                      timeout=60) as client:
        refused(client.get("/v1/bills/bad%20order"), 400, "INVALID_ORDER_NUMBER")
        refused(client.get("/v1/bills/ORDER-1", params={"wait": "soon"}), 400, "BAD_REQUEST")
        refused(client.post("/v1/bills", content=image, headers={"Content-Type": "image/png"},
                            params={"order_number": "not valid!"}), 400, "INVALID_ORDER_NUMBER")
        refused(client.post("/v1/bills", content=image, headers={"Content-Type": "image/png"},
                            params={"attr": "no-equals"}), 400, "BAD_REQUEST")
        refused(client.post("/v1/bills", content=b"", headers={"Content-Type": "image/png"}), 400, "EMPTY_BODY")
        refused(client.get(f"/v1/bills/NEVER-SUBMITTED-{time.time_ns()}"), 404, "UNKNOWN_ORDER")
        refused(client.get(f"/v1/bills/NEVER-SUBMITTED-{time.time_ns()}/image"), 404, "NO_IMAGE")
        refused(client.get("/v2/nothing"), 404, "NOT_FOUND")

        gif = refused(client.post("/v1/bills", content=GIF, headers={"Content-Type": "image/gif"}), 415,
                      "UNSUPPORTED_MEDIA_TYPE")
        assert "GIF" in gif["message"]
        refused(client.post("/v1/bills", content=b"hello", headers={"Content-Type": "text/plain"}), 415,
                "UNSUPPORTED_MEDIA_TYPE")
        refused(client.post("/v1/bills", content=image), 415, "UNSUPPORTED_MEDIA_TYPE")  # no Content-Type
        in_form = refused(client.post("/v1/bills", files=[("file", ("anim.gif", GIF, "image/gif"))]), 415,
                          "UNSUPPORTED_MEDIA_TYPE")
        assert in_form["message"].startswith("anim.gif:")

        limit = front_door.settings.limits.max_image_bytes
        big_pdf = b"%PDF-1.7\n" + b"0" * (limit + 10)
        too_large = refused(client.post("/v1/bills", files=[("file", ("scan.pdf", big_pdf, "application/pdf"))]),
                            413, "PAYLOAD_TOO_LARGE")
        assert "this file is a PDF and too large" in too_large["message"]


def test_keys_are_required_and_a_revoked_key_is_refused_while_in_use(front_door: FrontDoor) -> None:
    image = render_bill(["KEYED", "TOTAL 2.00"])
    url = front_door.a.url
    refused(httpx.post(f"{url}/v1/bills", content=image, headers={"Content-Type": "image/png"}), 401, "UNAUTHORIZED")
    refused(httpx.get(f"{url}/v1/bills/ORDER-1", headers={"Authorization": "Bearer bsk_nope_nope"}), 401,
            "UNAUTHORIZED")
    key_id, key = create_key(front_door.settings, "to revoke")
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        posted = client.post("/v1/bills", content=image, headers={"Content-Type": "image/png"})
        assert posted.status_code == 202, posted.text
        order = posted.json()["orders"][0]["order_number"]
        revoked = api_keys(front_door.settings, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        refused(client.get(f"/v1/bills/{order}"), 403, "KEY_REVOKED")
        refused(httpx.get(f"{front_door.b.url}/v1/bills/{order}", headers={"X-API-Key": key}), 403, "KEY_REVOKED")
    listed = api_keys(front_door.settings, "list")
    assert f"{key_id}  revoked" in listed.stdout and key not in listed.stdout


def test_a_key_over_its_rate_gets_429_with_retry_after(front_door: FrontDoor) -> None:
    _, key = create_key(front_door.settings, "slow client", "--rate", "1")
    with httpx.Client(base_url=front_door.a.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        statuses = [client.get("/v1/bills/RATE-1") for _ in range(4)]
    assert statuses[0].status_code == 404
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    refused(limited[0], 429, "RATE_LIMITED")
    assert int(limited[0].headers["Retry-After"]) >= 1


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_2_gb_body_is_refused_without_being_read_into_memory(front_door: FrontDoor) -> None:
    host, port = front_door.settings.api.host, front_door.settings.api.port
    pid = front_door.a.process.pid
    before = _peak_rss_kb(pid)
    two_gb = 2 * 1024 ** 3
    head = (f"POST /v1/bills HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {front_door.key}\r\n"
            "Content-Type: application/pdf\r\n")

    # declared: refused from the header, before any of the body is sent
    with socket.create_connection((host, port)) as sock:
        sock.sendall((head + f"Content-Length: {two_gb}\r\n\r\n").encode())
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"PAYLOAD_TOO_LARGE"' in answer

    # streamed in chunks with no length: refused once past the limit, the rest never read
    chunk = b"%PDF-" + b"0" * (1024 * 1024 - 5)
    sent = 0
    with socket.create_connection((host, port)) as sock:
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while sent < two_gb:
                sock.sendall(framed)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _answer(sock) if sent < two_gb else b""
    assert sent < two_gb, "the whole 2 GB was taken"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    grown_mb = (_peak_rss_kb(pid) - before) / 1024
    print(f"sent {sent / 2**20:.0f} MB of a 2048 MB body before the refusal; peak RSS grew {grown_mb:.0f} MB")
    assert grown_mb < 100, grown_mb
