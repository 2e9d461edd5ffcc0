"""The web page in a real headless browser (Debian's chromium through its chromedriver):
a bill uploaded through the page comes back with its text shown and its boxes drawn."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from producers.samples import render_bill
from tests.integration.api.conftest import FrontDoor

ARTIFACTS = Path(os.environ.get("BILLSTREAM_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / ".test-artifacts"))


def _browser():  # type: ignore[no-untyped-def]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("the web page test needs Chromium and its driver: apt-get install chromium chromium-driver",
                    pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_a_bill_uploaded_through_the_page_shows_its_text_and_boxes(front_door: FrontDoor, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bill = tmp_path / "page-bill.png"
    bill.write_bytes(render_bill(["BROWSER MART", "COFFEE 4.50", "TOTAL 4.50"]))
    browser = _browser()
    try:
        browser.get(front_door.a.url + "/")
        key = browser.find_element(By.ID, "api-key")
        key.send_keys(front_door.key)
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        browser.find_element(By.ID, "files").send_keys(str(bill))

        card = WebDriverWait(browser, 180).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "li.bill[data-status='recognized']"))
        WebDriverWait(browser, 30).until(
            lambda b: int(card.find_element(By.TAG_NAME, "canvas").get_attribute("data-boxes") or 0) > 0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "web-page.png"
        browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")

        lines = card.find_element(By.CSS_SELECTOR, ".lines").text.upper()
        assert "BROWSER" in lines and "TOTAL" in lines, lines
        assert card.find_element(By.CSS_SELECTOR, ".name").text == "page-bill.png"
        boxes = int(card.find_element(By.TAG_NAME, "canvas").get_attribute("data-boxes") or 0)
        assert boxes == len(card.find_elements(By.CSS_SELECTOR, ".lines li")) >= 3
        assert '"status": "RECOGNIZED"' in card.find_element(By.CSS_SELECTOR, ".json").get_attribute("textContent")

        # a refused file is explained in words, not a status number
        gif = tmp_path / "animation.gif"
        gif.write_bytes(b"GIF89a" + b"\x00" * 64)
        browser.find_element(By.ID, "files").send_keys(str(gif))
        refused = WebDriverWait(browser, 30).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "li.bill[data-status='refused'] .error"))
        assert "this file is a GIF" in refused.text, refused.text
    finally:
        browser.quit()
