"""A federation's signed metadata aggregate: fetched, verified, kept, and each institution's IdP taken from it.

``[saml] federation_metadata`` names the aggregate (URL or file) and
``federation_signer`` the certificate of the key the federation signs it
with.  ``refresh`` fetches it and, only when its signature verifies and its
``validUntil`` is still ahead, replaces the last good copy in
``data_dir/saml_federation/``; every attempt is recorded there
(``status.json``) with a stable code, and a refused or unreachable aggregate
leaves the last good copy in use until its own ``validUntil``.  Every process
verifies the stored copy again when it first reads it (a file on disk is no
more trusted than one on the network).  ``idp_metadata`` gives one
institution's IdP as a standalone ``EntityDescriptor``, cut verbatim from the
copy, so each institution's pysaml2 client still knows only its own IdP.
No Flask here: the admin page, the CLI and the scheduler call these.
"""
import datetime
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

import requests

from node.identity import saml_crypto
from node.identity.saml_names import xmlsec_binary
from node.domain import errors

log = logging.getLogger(__name__)

FOLDER, GOOD_COPY, STATUS = "saml_federation", "aggregate.xml", "status.json"
MAX_BYTES = 256 * 1024 * 1024  # eduGAIN's aggregate is about 80 MB
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = saml_crypto.DS
# What a federation's enveloped signature may ask xmlsec1 to run: nothing else (no XPath, no XSLT).
TRANSFORMS = {DS + "enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#",
              "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
              "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
              "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"}
RETRY_SECONDS = 60  # a sign-in with no usable copy at hand fetches at most this often
_lock = threading.RLock()  # one fetch at a time in a process; the copy is replaced atomically for the others
_loaded = {}  # good copy path -> (file key, Aggregate or None, why not)
_attempted = {}  # config path -> time.monotonic() of this process's last fetch


@dataclass(frozen=True)
class Source:
    """An institution's IdP, to be found in the federation's aggregate by its entity id."""

    entity_id: str


@dataclass
class Aggregate:
    """A verified aggregate: its name, when it expires, and its entities."""

    name: str
    valid_until: datetime.datetime
    sha256: str
    entities: dict = field(repr=False)  # entity id -> standalone EntityDescriptor XML (None: listed twice)
    idps: set = field(repr=False)  # entity ids with an IDPSSODescriptor


def configured(cfg):
    return bool(cfg.sections["saml"]["federation_metadata"])


def folder(cfg):
    return os.path.join(cfg.data_dir, FOLDER)


# --- reading the document ----------------------------------------------------

class _Scan:
    """One expat pass over the aggregate: what verification checks, and each entity's own text."""

    def __init__(self, data):
        self.data, self.root, self.ids, self.signature = data, None, [], None
        self.entities, self.idps = {}, set()
        self._scopes, self._pending, self._open = [{}], {}, []
        self._entity = None
        self._sig_depth = None
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._no_dtd
        parser.EntityDeclHandler = self._no_dtd
        parser.StartNamespaceDeclHandler = lambda prefix, uri: self._pending.__setitem__(prefix, uri)
        parser.StartElementHandler, parser.EndElementHandler = self._start, self._end
        self._parser = parser
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise errors.FederationInvalid(f"The aggregate is not well-formed XML ({expat.ErrorString(exc.code)}, "
                                           f"line {exc.lineno}).") from None

    @staticmethod
    def _no_dtd(*args):
        raise errors.FederationInvalid("The aggregate holds a DTD, which this node never reads.")

    def _start(self, name, attrs):
        depth = len(self._open)
        declared, self._pending = self._pending, {}
        self._scopes.append({**self._scopes[-1], **declared})
        self._open.append(name)
        if depth == 0:
            self.root = (name, attrs)
        if "ID" in attrs:
            self.ids.append(attrs["ID"])
        if name == f"{DS} Signature" and self.signature is None:
            self.signature = {"depth": depth, "refs": [], "transforms": [], "digests": [], "method": None}
            self._sig_depth = depth
        elif self._sig_depth is not None and depth > self._sig_depth:
            self._signature_part(name, attrs)
        if name == f"{MD} EntityDescriptor" and self._entity is None:
            self._entity = (attrs.get("entityID", ""), self._parser.CurrentByteIndex, self._scopes[-2], declared)
        elif name == f"{MD} IDPSSODescriptor" and self._entity is not None:
            self.idps.add(self._entity[0])

    def _signature_part(self, name, attrs):
        inside_signed_info = f"{DS} SignedInfo" in self._open[self._sig_depth + 1:]
        if not inside_signed_info:
            return
        if name == f"{DS} Reference":
            self.signature["refs"].append(attrs.get("URI"))
        elif name == f"{DS} Transform":
            self.signature["transforms"].append(attrs.get("Algorithm"))
        elif name == f"{DS} DigestMethod":
            self.signature["digests"].append(attrs.get("Algorithm"))
        elif name == f"{DS} SignatureMethod":
            self.signature["method"] = attrs.get("Algorithm")

    def _end(self, name):
        self._open.pop()
        self._scopes.pop()
        if self._sig_depth is not None and len(self._open) == self._sig_depth:
            self._sig_depth = None
        if name == f"{MD} EntityDescriptor" and self._entity is not None:
            entity_id, start, inherited, declared = self._entity
            end = self.data.index(b">", self._parser.CurrentByteIndex) + 1
            text = _standalone(self.data[start:end], inherited, declared)
            self.entities[entity_id] = None if entity_id in self.entities else text
            self._entity = None


def _standalone(element, inherited, declared):
    """ELEMENT's text (UTF-8 bytes) with the namespace declarations it inherited written on its start tag."""
    extra = "".join(f" xmlns{':' + prefix if prefix else ''}={quoteattr(uri)}"
                    for prefix, uri in inherited.items() if prefix not in declared)
    text = element.decode("utf-8")
    cut = next(i for i, char in enumerate(text) if i > 0 and (char.isspace() or char in "/>"))
    return text[:cut] + extra + text[cut:]


def _time(text):
    moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=moment.tzinfo or datetime.timezone.utc).astimezone(datetime.timezone.utc)


def _xmlsec_verify(cfg, data, root_id):
    """True when xmlsec1 verifies the signature of the element ROOT_ID with the federation's certificate only."""
    xmlsec = xmlsec_binary(cfg)
    with tempfile.NamedTemporaryFile(prefix="circnode-federation-", suffix=".xml") as handle:
        handle.write(data)
        handle.flush()
        # Only the configured certificate: no key carried in the document (X509Data, KeyValue), no URI
        # but the document itself.  The same options pysaml2 verifies responses with.
        command = [xmlsec, "--verify", "--enabled-reference-uris", "empty,same-doc",
                   "--enabled-key-data", "raw-x509-cert",
                   "--pubkey-cert-pem", cfg.sections["saml"]["federation_signer"],
                   "--id-attr:ID", f"{MD}:EntitiesDescriptor", "--node-id", root_id, handle.name]
        try:
            done = subprocess.run(command, capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("xmlsec1 could not verify the federation aggregate: %s", exc.__class__.__name__)
            return False
    return done.returncode == 0


def verify(cfg, data):
    """The Aggregate DATA (bytes) holds, or the FederationRefused saying why it may not be used.

    The validUntil must be there; whether it has passed is the caller's question (``now``).
    """
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise errors.FederationInvalid("The aggregate is not an XML document.")
    scan = _Scan(data)
    name, attrs = scan.root
    if name != f"{MD} EntitiesDescriptor":
        raise errors.FederationInvalid("The aggregate is not a SAML metadata EntitiesDescriptor.")
    signature, root_id = scan.signature, attrs.get("ID", "")
    if signature is None or signature["depth"] != 1:
        raise errors.FederationUnsigned("The aggregate carries no signature of its own (as a child of its "
                                        "EntitiesDescriptor).")
    if not root_id or signature["refs"] != ["#" + root_id]:
        raise errors.FederationUnsigned("The aggregate's signature does not cover the whole document.")
    if len(scan.ids) != len(set(scan.ids)):
        raise errors.FederationInvalid("The aggregate is malformed (duplicate IDs).")
    if any(transform not in TRANSFORMS for transform in signature["transforms"]):
        raise errors.FederationInvalid("The aggregate's signature asks for a transform this node does not run.")
    allow_sha1 = cfg.sections["saml"]["allow_sha1"]
    if (signature["method"] not in saml_crypto.accepted_signatures(allow_sha1)
            or any(d not in saml_crypto.accepted_digests(allow_sha1) for d in signature["digests"])):
        raise errors.FederationWeakAlgorithm(f"The aggregate is signed with {signature['method']} and digested "
                                             f"with {', '.join(map(str, signature['digests']))}; this node "
                                             "accepts RSA or ECDSA with SHA-256 or stronger.")
    if not _xmlsec_verify(cfg, data, root_id):
        raise errors.FederationBadSignature("The aggregate's signature does not verify with the federation's "
                                            "certificate ([saml] federation_signer): it was altered, or signed "
                                            "by another key.")
    if not attrs.get("validUntil"):
        raise errors.FederationNoValidUntil("The aggregate states no validUntil; a copy an attacker kept could "
                                            "be replayed for ever, so this node does not take it.")
    try:
        valid_until = _time(attrs["validUntil"])
    except ValueError:
        raise errors.FederationInvalid("The aggregate's validUntil is not a date and time.") from None
    return Aggregate(name=attrs.get("Name", ""), valid_until=valid_until, sha256=hashlib.sha256(data).hexdigest(),
                     entities=scan.entities, idps=scan.idps & set(scan.entities))


# --- fetching, keeping, loading ------------------------------------------------

def _fetch(source):
    """The aggregate's bytes from SOURCE (URL or file), or FederationUnreachable."""
    if source.startswith(("http://", "https://")):
        try:
            with requests.get(source, timeout=(10, 120), stream=True) as response:
                response.raise_for_status()
                chunks, size = [], 0
                for chunk in response.iter_content(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise errors.FederationInvalid("The aggregate is larger than 256 MB.")
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.RequestException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            raise errors.FederationUnreachable(f"{source} could not be fetched ({exc.__class__.__name__}"
                                               f"{f' {status}' if status else ''}).") from None
    try:
        if os.path.getsize(source) > MAX_BYTES:
            raise errors.FederationInvalid("The aggregate is larger than 256 MB.")
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise errors.FederationUnreachable(f"{source} cannot be read ({exc.strerror}).") from None


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds") if moment else None


def read_status(cfg):
    """What the last attempts recorded (status.json), shared by every process of the node."""
    try:
        with open(os.path.join(folder(cfg), STATUS), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _write(cfg, name, data):
    os.makedirs(folder(cfg), exist_ok=True)
    path = os.path.join(folder(cfg), name)
    with tempfile.NamedTemporaryFile(dir=folder(cfg), prefix=name + ".", suffix=".tmp", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)  # readers see the old file or the new one, never half of it
    return path


def refresh(cfg, now):
    """Fetch and verify the aggregate; keep it when good; record the attempt.  Return the Aggregate,
    or raise the FederationRefused (or SignInUnavailable: no xmlsec1) that says why it was not taken."""
    source = cfg.sections["saml"]["federation_metadata"]
    with _lock:
        _attempted[cfg.path] = time.monotonic()
        status = read_status(cfg)
        status["last_attempt_at"] = _iso(now)
        try:
            data = _fetch(source)
            aggregate = verify(cfg, data)
            if aggregate.valid_until <= now:
                raise errors.FederationExpired(f"The aggregate's validUntil ({_iso(aggregate.valid_until)}) "
                                               "has passed: the federation has not published a newer one, or "
                                               "an old copy is being served.")
        except errors.CircnodeError as exc:
            status["last_error"] = {"code": exc.code, "message": exc.message, "at": _iso(now)}
            _write(cfg, STATUS, json.dumps(status, indent=1).encode())
            log.warning("federation metadata from %s not taken: %s (%s); %s", source, exc.code, exc.message,
                        "keeping the last good copy" if os.path.exists(_good_copy(cfg)) else "no good copy yet")
            raise
        path = _write(cfg, GOOD_COPY, data)
        _loaded[path] = (_file_key(cfg, path), aggregate, "")
        status.update(last_success_at=_iso(now), last_error=None)
        _write(cfg, STATUS, json.dumps(status, indent=1).encode())
        log.info("federation metadata from %s taken: %d entities, %d identity providers, valid until %s",
                 source, len(aggregate.entities), len(aggregate.idps), _iso(aggregate.valid_until))
        return aggregate


def refresh_safely(cfg, clock):
    """The scheduler's job: refresh as of CLOCK(); never raises (refusals are recorded and logged)."""
    try:
        refresh(cfg, clock())
    except errors.CircnodeError:
        pass
    except Exception:
        log.exception("federation metadata refresh crashed")


def _good_copy(cfg):
    return os.path.join(folder(cfg), GOOD_COPY)


def _file_key(cfg, path):
    signer = cfg.sections["saml"]["federation_signer"]
    stat, signer_stat = os.stat(path), os.stat(signer)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, signer, signer_stat.st_mtime_ns


def _load(cfg):
    """(the stored good copy verified again, or None; why not).  Cached until the file changes."""
    path = _good_copy(cfg)
    try:
        key = _file_key(cfg, path)
    except OSError:
        return None, ""
    cached = _loaded.get(path)
    if cached and cached[0] == key:
        return cached[1], cached[2]
    try:
        with open(path, "rb") as handle:
            aggregate, why = verify(cfg, handle.read()), ""
    except OSError as exc:
        aggregate, why = None, f"the stored copy cannot be read ({exc.strerror})"
    except errors.CircnodeError as exc:
        aggregate, why = None, f"the stored copy no longer verifies ({exc.code}: {exc.message})"
        log.error("federation metadata: %s", why)
    _loaded[path] = (key, aggregate, why)
    return aggregate, why


def current(cfg, now, fetch=True):
    """The last good copy, if still valid at NOW; else SignInUnavailable saying why.

    With none at hand (a node that never fetched it, or one whose copy expired), a sign-in fetches it
    itself (FETCH), at most once every RETRY_SECONDS; otherwise only the scheduler and the CLI fetch.
    """
    with _lock:
        aggregate, why = _load(cfg)
        usable = aggregate is not None and aggregate.valid_until > now
        if fetch and not usable and time.monotonic() - _attempted.get(cfg.path, -RETRY_SECONDS) >= RETRY_SECONDS:
            try:
                refresh(cfg, now)
            except errors.CircnodeError:
                pass
            aggregate, why = _load(cfg)
    error = read_status(cfg).get("last_error") or {}
    last = f" The last attempt to fetch it was refused: {error['code']} ({error['message']})" if error else ""
    if aggregate is None:
        raise errors.SignInUnavailable("No verified copy of the federation's metadata is at hand"
                                       f"{f' ({why})' if why else ''}.{last}")
    if aggregate.valid_until <= now:
        raise errors.SignInUnavailable(f"The federation's metadata expired at {_iso(aggregate.valid_until)} "
                                       f"and no newer copy verified.{last}")
    return aggregate


def idp_metadata(cfg, source, library, now, fetch=True):
    """(standalone metadata of the IdP SOURCE names, version) from the last good copy, or the refusal."""
    aggregate = current(cfg, now, fetch)
    text = aggregate.entities.get(source.entity_id)
    if source.entity_id not in aggregate.idps or text is None:
        listed = "is listed twice in" if source.entity_id in aggregate.entities else "is not in"
        raise errors.SamlIdpNotInFederation(
            f"Sign-in at {library} is not available: its identity provider ({source.entity_id}) {listed} the "
            "federation's metadata. Use your patron id or a network pass, and tell the library's staff.")
    return text, aggregate.sha256


# --- what admins see --------------------------------------------------------------

def institution_states(cfg, now, fetch=False):
    """Each institution whose IdP comes from the aggregate: {code, name, entity_id, code_state, message}."""
    found = [(cfg.institution, cfg.node.get("idp_entity_id", ""))]
    found += [(code, peer.idp_entity_id) for code, peer in cfg.peers.items()]
    states = []
    for code, entity_id in found:
        if not entity_id:
            continue
        try:
            idp_metadata(cfg, Source(entity_id), cfg.library_name(code), now, fetch)
            state, message = "ok", "found in the aggregate"
        except errors.CircnodeError as exc:
            state, message = exc.code, exc.message
        states.append({"institution": code, "name": cfg.library_name(code), "entity_id": entity_id,
                       "state": state, "message": message})
    return states


def status(cfg, now):
    """Everything the admin page and 'circnode saml federation status' show, as one dict."""
    settings = cfg.sections["saml"]
    recorded = read_status(cfg)
    with _lock:
        aggregate, why = _load(cfg)
    copy = None
    if aggregate is not None:
        copy = {"name": aggregate.name, "valid_until": _iso(aggregate.valid_until), "sha256": aggregate.sha256,
                "entities": len(aggregate.entities), "identity_providers": len(aggregate.idps),
                "expired": aggregate.valid_until <= now}
    error = recorded.get("last_error")
    return {"source": settings["federation_metadata"], "signer": settings["federation_signer"],
            "refresh_hours": settings["federation_refresh_hours"],
            "last_attempt_at": recorded.get("last_attempt_at"), "last_success_at": recorded.get("last_success_at"),
            "last_error": error, "copy": copy, "copy_problem": why,
            "keeping_last_good_copy": bool(error and copy and not copy["expired"]),
            "institutions": institution_states(cfg, now)}
