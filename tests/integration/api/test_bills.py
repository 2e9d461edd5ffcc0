"""The HTTP API against the real stack: submit and wait, idempotency, two instances."""
from __future__ import annotations

import hashlib
import uuid

import httpx

from producers.samples import render_bill
from tests.integration.api.conftest import FrontDoor
from tests.support.api import submitted_orders
from tests.support.pipeline import collect_results


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_submit_then_wait_gives_the_result_and_the_image(front_door: FrontDoor) -> None:
    image = render_bill(["API WAIT STORE", "TOTAL 12.40"])
    with httpx.Client(base_url=front_door.a.url, headers=bearer(front_door.key), timeout=150) as client:
        posted = client.post("/v1/bills", content=image, headers={"Content-Type": "image/png"},
                             params={"attr": "till=4"})
        assert posted.status_code == 202, posted.text
        order = posted.json()["orders"][0]
        assert order["sha256"] == hashlib.sha256(image).hexdigest() and order["content_type"] == "image/png"
        assert posted.headers["Location"].endswith(f"/v1/bills/{order['order_number']}")

        done = client.get(posted.headers["Location"], params={"wait": 120})
        assert done.status_code == 200, done.text
        result = done.json()
        assert result["order_number"] == order["order_number"] and result["status"] == "RECOGNIZED"
        assert "TOTAL" in result["page_text"].upper() and result["lines"]

        stored = client.get(f"/v1/bills/{order['order_number']}/image")
        assert stored.status_code == 200 and stored.content == image
        assert stored.headers["content-type"] == "image/png"


def test_a_multipart_form_submits_each_file(front_door: FrontDoor) -> None:
    first, second = render_bill(["FORM ONE", "TOTAL 1.00"]), render_bill(["FORM TWO", "TOTAL 2.00"])
    with httpx.Client(base_url=front_door.a.url, headers=bearer(front_door.key), timeout=150) as client:
        posted = client.post("/v1/bills", files=[("file", ("one.png", first, "image/png")),
                                                 ("file", ("two.png", second, "image/png"))])
        assert posted.status_code == 202, posted.text
        orders = posted.json()["orders"]
        assert [o["filename"] for o in orders] == ["one.png", "two.png"]
        assert [o["sha256"] for o in orders] == [hashlib.sha256(b).hexdigest() for b in (first, second)]
        texts = [client.get(f"/v1/bills/{o['order_number']}", params={"wait": 120}).json()["page_text"]
                 for o in orders]
        assert "ONE" in texts[0].upper() and "TWO" in texts[1].upper()


def test_an_idempotency_key_replays_the_answer_on_any_instance(front_door: FrontDoor) -> None:
    image = render_bill(["IDEMPOTENT", "TOTAL 5.00"])
    key = f"idem-{uuid.uuid4().hex}"
    headers = bearer(front_door.key) | {"Idempotency-Key": key, "Content-Type": "image/png"}
    first = httpx.post(f"{front_door.a.url}/v1/bills", content=image, headers=headers, timeout=60)
    again = httpx.post(f"{front_door.b.url}/v1/bills", content=image, headers=headers, timeout=60)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    order = first.json()["orders"][0]["order_number"]

    other = httpx.post(f"{front_door.a.url}/v1/bills", content=render_bill(["SOMETHING ELSE"]), headers=headers,
                       timeout=60)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"

    results = collect_results(front_door.settings, {order}, timeout=150, settle=3)
    assert len(results[order]) == 1
    assert submitted_orders(front_door.settings).count(order) == 1  # the replay published nothing


def test_an_order_submitted_on_one_instance_is_read_on_the_other(front_door: FrontDoor) -> None:
    image = render_bill(["TWO INSTANCES", "TOTAL 7.70"])
    posted = httpx.post(f"{front_door.a.url}/v1/bills", content=image, timeout=60,
                        headers=bearer(front_door.key) | {"Content-Type": "image/png"})
    assert posted.status_code == 202, posted.text
    order = posted.json()["orders"][0]["order_number"]
    done = httpx.get(f"{front_door.b.url}/v1/bills/{order}", params={"wait": 120}, headers=bearer(front_door.key),
                     timeout=150)
    assert done.status_code == 200 and done.json()["order_number"] == order, done.text


def test_the_schema_docs_and_health_are_served(front_door: FrontDoor) -> None:
    schema = httpx.get(f"{front_door.a.url}/openapi.json", timeout=30).json()
    assert {"/v1/bills", "/v1/bills/{order_number}", "/v1/bills/{order_number}/image", "/healthz",
            "/readyz"} <= schema["paths"].keys()
    assert "multipart/form-data" in schema["paths"]["/v1/bills"]["post"]["requestBody"]["content"]
    assert "swagger" in httpx.get(f"{front_door.a.url}/docs", timeout=30).text.lower()
    assert httpx.get(f"{front_door.b.url}/healthz", timeout=30).json() == {"status": "ok"}
    ready = httpx.get(f"{front_door.b.url}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "kafka": True, "object_store": True}


def _metric(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_each_bill_and_refusal_and_the_audit_log_names_the_key(front_door: FrontDoor) -> None:
    url = front_door.a.url
    accepted = _metric(url, "billstream_api_bills_accepted_total")
    refused = _metric(url, "billstream_api_refusals_total", code="UNAUTHORIZED")
    posts = _metric(url, "billstream_api_requests_total", route="/v1/bills", method="POST", status="202")
    image = render_bill(["METERED", "TOTAL 3.00"])
    posted = httpx.post(f"{url}/v1/bills", content=image, timeout=60,
                        headers=bearer(front_door.key) | {"Content-Type": "image/png"})
    assert posted.status_code == 202, posted.text
    assert httpx.post(f"{url}/v1/bills", content=image, timeout=60).status_code == 401
    assert _metric(url, "billstream_api_bills_accepted_total") == accepted + 1
    assert _metric(url, "billstream_api_bill_bytes_accepted_total") >= len(image)
    assert _metric(url, "billstream_api_refusals_total", code="UNAUTHORIZED") == refused + 1
    assert _metric(url, "billstream_api_requests_total", route="/v1/bills", method="POST", status="202") == posts + 1
    assert _metric(url, "billstream_api_request_seconds_count", route="/v1/bills") > 0

    order = posted.json()["orders"][0]
    key_id = front_door.key.split("_")[1]
    audit = [line for line in front_door.a.log_path.read_text().splitlines() if order["order_number"] in line]
    assert len(audit) == 1 and f"key:{key_id}" in audit[0] and order["sha256"] in audit[0], audit
