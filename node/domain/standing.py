"""Where a patron's standing comes from: our own records, or their home node.

A visiting patron's standing is asked of the home node (signed, short
timeout).  The answer is reused for the rest of a desk visit, at most
``[sync] standing_cache_seconds``.  When the home node cannot be reached the
lender still lends under its offline policy: the answer is "provisional".
A home node that answers and refuses (a 4xx, or an answer that fails our
signature check) is not offline: nothing is lent (``home_refused``), and the
refusal is kept for the admin queue.
"""
import collections
import logging
import threading

from node.domain import errors
from node.domain.circulation import Standing, count_open_loans, own_patron_standing
from node.domain.ports import home_node
from node.store.models import Patron

log = logging.getLogger(__name__)

_cache = collections.OrderedDict()  # oldest answer first
_lock = threading.Lock()


def standing_for(cfg, institution, home_id, now, use_cache=True):
    """The patron's standing as of NOW; provisional when the home node is unreachable.

    Raises HomeRefused when the home node refuses the question itself.
    """
    if institution == cfg.institution:
        return own_patron_standing(cfg, home_id, now)
    if institution not in cfg.peers:
        raise errors.UnknownInstitution(f"{institution!r} is not a library of this network.")
    key = (cfg.institution, institution, home_id)
    ttl = cfg.sync["standing_cache_seconds"]
    if use_cache and ttl:
        with _lock:
            hit = _cache.get(key)
        if hit and 0 <= (now - hit[0]).total_seconds() < ttl:
            return hit[1]
    try:
        answer = home_node.ask_standing(cfg, institution, home_id, now)
    except errors.PeerRefused as exc:
        log.warning("standing check refused by %s: %s", institution, exc.details["cause"])
        home_node.record_refusal(exc, "standing check", now)
        cause = exc.details["cause"]
        remedy = ("the home library answers only so many questions a minute: try again in a minute"
                  if "rate_limited" in cause else
                  "the two libraries' keys, clocks or settings need fixing (admin sync queue)")
        raise errors.HomeRefused(
            f"{cfg.library_name(institution)} refused this library's standing check: {cause}. "
            f"Nothing is lent; {remedy}.", institution=institution, cause=cause) from None
    except errors.PeerUnreachable as exc:
        log.warning("standing check with %s failed (%s); lending provisionally", institution, exc.message)
        return Standing(True, provisional=True, reason="home node unreachable")
    standing = Standing(ok=bool(answer.get("ok")), code=answer.get("code") or "",
                        reason=answer.get("reason") or "", name=answer.get("name") or "",
                        email=answer.get("email") or "")
    if standing.ok:
        _remember(key, standing, now, ttl)
    return standing


def _remember(key, standing, now, ttl):
    """Cache STANDING under KEY, dropping answers past their life.

    Without the pruning a node that runs for months would keep every visit's
    answer.  The cache is kept oldest first, so pruning stops at the first
    answer still alive: walking every answer of the last TTL seconds on each
    visit grew with the desk's traffic (0.25 ms of lender CPU per visit with
    1,500 answers cached; docs/benchmarks.md).
    """
    with _lock:
        _cache.pop(key, None)
        _cache[key] = (now, standing)
        while _cache:
            oldest, (at, _) = next(iter(_cache.items()))
            if 0 <= (now - at).total_seconds() < ttl:
                break
            del _cache[oldest]


def network_standing(cfg, home_id, now):
    """Our patron HOME_ID's standing as a lender elsewhere asks it: ours, and the network-loan limit.

    Past ``max_network_loans`` open loans anywhere in the network the answer is
    ``patron_limit_reached``.
    """
    patron = Patron.of(cfg.institution, home_id)  # read once: the standing and the loan count both need it
    standing = own_patron_standing(cfg, home_id, now, patron=patron)
    if standing.ok and count_open_loans(patron) >= cfg.policy[""]["max_network_loans"]:
        return Standing(False, "patron_limit_reached", "", standing.name, standing.email)
    return standing
