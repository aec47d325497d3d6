#!/usr/bin/python3
"""The dashboard in a real browser: headless Chromium driven by Selenium (Debian's chromium,
chromium-driver and python3-selenium) loads http://127.0.0.1:PORT/#token=TOKEN from a running
gateway and waits until the device table lists the devices, a refusal appears with its reason,
and a sensor's chart has gained points; then saves a screenshot. For
tests/integration/test_dashboard.sh.

    dashboard_browser.py URL SCREENSHOT DEVICE REFUSED_DEVICE REASON_WORD SENSOR
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url, shot, device, refused, reason_word, sensor = sys.argv[1:7]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def wait_for(what, fn, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # the page is being redrawn between polls
            pass
        time.sleep(0.25)
    fail("the dashboard never showed " + what)


opts = Options()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1400,1000"):
    opts.add_argument(a)
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    drv.get(url)
    wait_for("its live status", lambda: "live" in drv.find_element(By.ID, "status").text)
    row = wait_for("device " + device,
                   lambda: drv.find_element(By.CSS_SELECTOR, 'tr[data-device="%s"]' % device))
    wait_for(device + " connected and attested",
             lambda: "attested" in drv.find_element(
                 By.CSS_SELECTOR, 'tr[data-device="%s"]' % device).text)
    print("ok - the device table lists %s, connected and attested" % device)
    ref = wait_for("the refusal of " + refused,
                   lambda: drv.find_element(By.CSS_SELECTOR, 'tr[data-refusal="%s"]' % refused))
    text = ref.text
    if reason_word not in text:
        fail("the refusal row says %r, not %r" % (text, reason_word))
    print("ok - the refusal of %s appears with its reason (%s)" % (refused, text.split("\n")[-1]))
    pts = wait_for("points on %s's chart" % sensor,
                   lambda: int(drv.find_element(
                       By.CSS_SELECTOR, 'svg[data-sensor="%s"]' % sensor)
                       .get_attribute("data-points") or 0) >= 2 and
                   int(drv.find_element(By.CSS_SELECTOR, 'svg[data-sensor="%s"]' % sensor)
                       .get_attribute("data-points")))
    before = pts
    wait_for("the chart gaining a point",
             lambda: int(drv.find_element(By.CSS_SELECTOR, 'svg[data-sensor="%s"]' % sensor)
                         .get_attribute("data-points")) > before)
    kind = drv.find_element(By.CSS_SELECTOR, 'svg[data-sensor="%s"]' % sensor).get_attribute(
        "data-kind")
    if kind != "readings":
        fail("%s's chart shows %s, not the readings the gateway opened" % (sensor, kind))
    print("ok - %s's chart of its readings (opened with the group key) gains points" % sensor)
    time.sleep(2.5)
    drv.save_screenshot(shot)
    print("ok - screenshot: " + shot)
finally:
    drv.quit()
