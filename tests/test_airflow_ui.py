"""The Airflow UI, driven like a person would: log in, open the trigger form of video_recs_nightly,
set top_n, trigger, and the run publishes lists of that length. Also: the UI and its API require
a login. Runs `airflow standalone` on free ports with headless Chromium from Debian (Selenium, the
system chromedriver; nothing is downloaded). The form's screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from tests.conftest import PROJECT_ROOT, project_env

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
USER, PASSWORD = "admin", "ui-test-password"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TOP_N = 7


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, seconds: float, what: str, interval: float = 2.0):
    """Call `check` until it returns something other than None or False; return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result is not None and result is not False:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them)")
    from tests.landing import text_only_catalog, write_landing

    root = tmp_path_factory.mktemp("airflow-ui")
    wh = config.Warehouse.at(root / "warehouse")
    videos, _, rows = text_only_catalog(seed=4, n_videos=60, n_users=20)
    write_landing(wh, videos, rows)

    home, port = root / "airflow-home", free_port()
    home.mkdir()
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({USER: PASSWORD}))
    env = project_env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
        AIRFLOW__API__PORT=str(port), AIRFLOW__API__BASE_URL=f"http://localhost:{port}",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[2]"}',
        # The form's warehouse default, and no schedule: only the run this test triggers may run.
        VREC_WAREHOUSE=str(wh.root), VREC_SCHEDULE="")
    for command in (["db", "migrate"], ["pools", "set", "gpu", "1", "GPU training nodes"]):
        subprocess.run(["airflow", *command], check=True, env=env, capture_output=True)
    log = (root / "standalone.log").open("w")
    server = subprocess.Popen(["airflow", "standalone"], env=env, cwd=PROJECT_ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        wait_for(lambda: http_status(f"{url}/api/v2/version") == 200, 180, "the Airflow API server")
        yield url, wh
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(root / "standalone.log", ARTIFACTS / "airflow_standalone.log")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def test_the_api_requires_a_login(airflow_ui):
    url, _ = airflow_ui
    assert http_status(f"{url}/api/v2/dags") == 401
    assert http_status(f"{url}/api/v2/dags/video_recs_nightly/dagRuns") == 401


def test_trigger_form_sets_top_n_and_the_run_publishes_lists_of_that_length(airflow_ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, wh = airflow_ui
    browser.get(url)
    # No way in without a login: the page sends the browser to the login form (a client-side
    # redirect, so it may land a moment after the page loads).
    wait_for(lambda: "/auth/login" in browser.current_url, 30, "the redirect to the login page", 0.5)
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/auth/login" not in browser.current_url, 30, "the login to go through", 0.5)

    def trigger_button():  # the DAG appears once the dag-processor has parsed it
        browser.get(f"{url}/dags/video_recs_nightly")
        return browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']") or None
    wait_for(trigger_button, 180, "video_recs_nightly in the UI", 5)[0].click()

    top_n = browser.find_element(By.NAME, "element_top_n")
    top_n.send_keys(Keys.CONTROL, "a")
    top_n.send_keys(str(TOP_N))
    assert browser.find_element(By.NAME, "element_warehouse").get_attribute("value") == str(wh.root)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "airflow_trigger_form.png"))
    submit = browser.find_element(By.XPATH, "//div[@role='dialog']//button[normalize-space()='Trigger']")
    assert submit.is_enabled(), "the trigger form refused its own defaults"
    submit.click()

    def published():
        if not wh.recommendations.exists():
            return None
        lists = DeltaTable(str(wh.recommendations)).to_pandas()
        return lists if lists.groupby("user_id").size().eq(TOP_N).all() else None
    lists = wait_for(published, 600, f"lists of {TOP_N} in the serving table", 5)
    assert lists["user_id"].nunique() == 20
