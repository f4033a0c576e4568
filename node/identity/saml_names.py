"""This node's SAML names and tools, read from its config: entity id, assertion consumer, xmlsec1, who signs in.

Apart from saml_sp.py so the metadata writer and the federation reader can use
them without importing the service provider that imports them.
"""
import os
import shutil

from node.domain import errors


def entity_id(cfg):
    """This service provider's SAML entity id (its metadata URL)."""
    return cfg.node["base_url"] + "/saml/metadata"


def acs_url(cfg):
    """Where identity providers post their answers (the assertion consumer service)."""
    return cfg.node["base_url"] + "/saml/acs"


def xmlsec_binary(cfg):
    """The xmlsec1 executable, or SignInUnavailable saying how to get it."""
    configured = cfg.sections.get("saml", {}).get("xmlsec_binary") or ""
    path = configured or shutil.which("xmlsec1")
    if not path or not os.access(path, os.X_OK):
        where = f"[saml] xmlsec_binary = {configured}" if configured else "xmlsec1 on PATH"
        raise errors.SignInUnavailable(
            f"Patron sign-in needs xmlsec1 and {where} was not found. Install it "
            "(Debian/Ubuntu: apt-get install xmlsec1) or set [saml] xmlsec_binary.")
    return path


def sign_in_institutions(cfg):
    """Codes of the institutions whose patrons can sign in here (an IdP is configured)."""
    codes = [cfg.institution] if cfg.node.get("idp_metadata") or cfg.node.get("idp_entity_id") else []
    return codes + [code for code, peer in cfg.peers.items() if peer.idp_metadata or peer.idp_entity_id]
