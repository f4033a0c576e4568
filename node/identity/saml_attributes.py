"""The names a SAML attribute goes by: friendly name, ``urn:oid:`` form, and the claim URIs of Microsoft's IdPs.

IdPs name the same attribute differently: SimpleSAMLphp and Shibboleth send
``urn:oid:0.9.2342.19200300.100.1.1`` (FriendlyName ``uid``), older set-ups
``uid`` or ``urn:mace:dir:attribute-def:uid``, and pysaml2 renames the OIDs it
knows to friendly names before circnode looks.  So a configured name is
matched through every name of its row here (and through pysaml2's own
table for attributes not listed), both ways.  docs/identity.md shows the rows.
"""
import functools

OID = "urn:oid:"
MACE = "urn:mace:dir:attribute-def:"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
BASIC_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_MS_CLAIMS = "http://schemas.microsoft.com/identity/claims/"

# (friendly name, OID, other names (Entra ID / ADFS claim URIs), what it holds)
ATTRIBUTES = [
    ("uid", "0.9.2342.19200300.100.1.1", (), "login name (the default patron id)"),
    ("eduPersonPrincipalName", "1.3.6.1.4.1.5923.1.1.1.6", (), "user@scope, may be reassigned years later"),
    ("eduPersonUniqueId", "1.3.6.1.4.1.5923.1.1.1.13", (), "opaque id@scope, never reassigned"),
    ("schacPersonalUniqueCode", "1.3.6.1.4.1.25178.1.2.14", (),
     "e.g. urn:schac:personalUniqueCode:int:esi:..., a student or library card number"),
    ("employeeNumber", "2.16.840.1.113730.3.1.3", (), "staff or card number at some institutions"),
    ("mail", "0.9.2342.19200300.100.1.3", (_CLAIMS + "emailaddress",), "e-mail address (patron's email)"),
    ("displayName", "2.16.840.1.113730.3.1.241", (_MS_CLAIMS + "displayname",), "name to show (patron's name)"),
    ("cn", "2.5.4.3", (), "common name (name, when displayName is missing)"),
    ("givenName", "2.5.4.42", (_CLAIMS + "givenname",), "first name (name, with sn)"),
    ("sn", "2.5.4.4", (_CLAIMS + "surname",), "surname (name, with givenName)"),
]
# Entra ID / ADFS claims with no LDAP twin: they are their own names.
CLAIMS = [
    (_CLAIMS + "name", "Entra ID: the user principal name (user@tenant domain)"),
    (_CLAIMS + "upn", "ADFS: the user principal name"),
    (_MS_CLAIMS + "objectidentifier", "Entra ID: the user's object id, never reassigned"),
]
# Where the patron's name and email are looked for, in this order.
NAME_ATTRIBUTES = ("displayName", "cn")
GIVEN_NAME, SURNAME = "givenName", "sn"
EMAIL_ATTRIBUTE = "mail"


def _rows():
    rows = [(friendly, (friendly, OID + oid, MACE + friendly, *others)) for friendly, oid, others, _ in ATTRIBUTES]
    return rows + [(uri, (uri,)) for uri, _ in CLAIMS]


@functools.lru_cache(maxsize=1)
def _index():
    index = {}
    for _, names in _rows():
        for name in names:
            index[name.lower()] = names
    return index


@functools.lru_cache(maxsize=1)
def _pysaml2_map():
    """pysaml2's own OID <-> friendly name table (lower-cased), for attributes not in ATTRIBUTES."""
    try:
        from saml2.attributemaps.saml_uri import MAP
    except ImportError:  # pragma: no cover - pysaml2 is a dependency
        return {}
    pairs = {}
    for oid, friendly in MAP["fro"].items():
        pairs.setdefault(oid.lower(), set()).add(friendly)
        pairs.setdefault(friendly.lower(), set()).add(oid)
    return pairs


def names_for(name):
    """Every name NAME goes by (NAME first): its row in ATTRIBUTES, or pysaml2's table."""
    names = _index().get(name.lower())
    if names is None:
        names = (name, *sorted(_pysaml2_map().get(name.lower(), ())))
    return (name, *[n for n in names if n.lower() != name.lower()])


def values(ava, name):
    """The distinct non-empty text values of NAME in AVA (attribute -> values), under any of its names."""
    wanted = {n.lower() for n in names_for(name)}
    found = []
    for key, items in (ava or {}).items():
        if key.lower() not in wanted:
            continue
        for item in items if isinstance(items, (list, tuple)) else [items]:
            if isinstance(item, str) and item.strip() and item.strip() not in found:
                found.append(item.strip())
    return found


def requested(name):
    """(Name, NameFormat, FriendlyName or "") to ask an IdP for NAME in metadata (RequestedAttribute)."""
    names = names_for(name)
    oid = next((n for n in names if n.lower().startswith(OID)), None)
    if oid:
        friendly = next((n for n in names if ":" not in n), "")
        return oid, URI_FORMAT, friendly
    if "://" in name or name.lower().startswith("urn:"):
        return name, URI_FORMAT, ""
    return name, BASIC_FORMAT, name
