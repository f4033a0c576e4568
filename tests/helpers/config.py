"""A node.ini for a test node: the settings every test node shares, plus peers and extra sections."""
import os
import textwrap

def write_config(folder, institution="NORTH", name="North University", port=8080, peers=(), extra=""):
    """Write a node.ini for INSTITUTION into FOLDER and return its path."""
    os.makedirs(folder, exist_ok=True)
    peer_text = "".join(
        textwrap.dedent(f"""
        [peer:{code}]
        name = {peer_name}
        base_url = {url}
        public_key = {key}
        """) for code, peer_name, url, key in peers)
    text = textwrap.dedent(f"""
        [node]
        institution = {institution}
        name = {name}
        base_url = http://127.0.0.1:{port}
        timezone = Europe/Zurich
        secret_key = test-secret-{institution}-0123456789

        [policy]
        loan_days = 14
        renewals_allowed = 2
        max_loans = 5
        offline_max_loans = 2

        [policy:reference]
        loanable = no

        [sync]
        interval_seconds = 1
        max_backoff_seconds = 4
        """) + peer_text + textwrap.dedent(extra)
    path = os.path.join(folder, "node.ini")
    with open(path, "w") as handle:
        handle.write(text)
    return path
