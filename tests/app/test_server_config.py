"""The server settings `make run` starts the dashboard with (.streamlit/config.toml, read from the
repository root), as Streamlit itself loads them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.app.conftest import ROOT

# What `streamlit run` does before it starts the server: parse the config files (~/.streamlit, then
# ./.streamlit from the working directory, then the flags); then report where each option came from.
LOAD_AS_STREAMLIT_RUN = """
import json
from streamlit import config
from streamlit.web import bootstrap
bootstrap.load_config_options(flag_options={})
key = "runner.postScriptGC"
default = config.get_config_options()[key].default_val
print(json.dumps({"value": config.get_option(key), "default": default, "where": config.get_where_defined(key)}))
"""


def test_no_full_garbage_collection_after_each_script_run():
    """Streamlit's default collects all generations after every script run, and the progress panel
    reruns twice a second while a dream runs: each collection walks ~440,000 objects with the GIL
    held and stalled the dream. The app's config turns it off, and Streamlit takes it from there."""
    done = subprocess.run([sys.executable, "-c", LOAD_AS_STREAMLIT_RUN], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    option = json.loads(done.stdout.strip().splitlines()[-1])
    assert option["default"] is True  # what a server without our config does
    assert option["value"] is False
    assert option["where"] == str(ROOT / ".streamlit" / "config.toml")
