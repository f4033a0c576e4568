"""Where a patron's standing comes from: our own records, or their home node.

A visiting patron's standing is asked of the home node (signed, short
timeout) at the start of every desk visit: a new visit never lends on an
answer from an earlier one (a patron blocked at home meanwhile would be lent
to online).  Within one visit the front-end keeps the answer
(``lending.Borrower.standing``) and ``reusable`` says whether the next
checkout may lend on it: a positive answer of the home node, at most
``[sync] standing_cache_seconds`` old.  Nothing is kept between visits here.

When the home node cannot be reached the lender still lends under its
offline policy: the answer is "provisional".  A home node that answers and
refuses (a 4xx, or an answer that fails our signature check) is not
offline: nothing is lent (``home_refused``), and the refusal is kept for the
admin queue.
"""
import logging

from node.domain import errors
from node.domain.circulation import HOME, UNREACHABLE, Standing, count_open_loans, own_patron_standing
from node.domain.ports import home_node
from node.store.models import Patron

log = logging.getLogger(__name__)


def standing_for(cfg, institution, home_id, now):
    """The patron's standing as of NOW, asked afresh; provisional when the home node is unreachable.

    Raises HomeRefused when the home node refuses the question itself.
    """
    if institution == cfg.institution:
        return own_patron_standing(cfg, home_id, now)
    if institution not in cfg.peers:
        raise errors.UnknownInstitution(f"{institution!r} is not a library of this network.")
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
        return Standing(True, provisional=True, reason="home node unreachable", source=UNREACHABLE)
    return Standing(ok=bool(answer.get("ok")), code=answer.get("code") or "",
                    reason=answer.get("reason") or "", name=answer.get("name") or "",
                    email=answer.get("email") or "", source=HOME, asked_at=now)


def reusable(cfg, standing, now):
    """True when STANDING, asked earlier in this visit, may still lend at NOW without asking again.

    Only the home node's yes is kept, and for at most ``[sync] standing_cache_seconds``
    (0: ask at every checkout): our own records are read at every checkout anyway,
    a pass is verified again (it may have been revoked), and an unreachable home
    node is tried again in case it is back.
    """
    if standing is None or standing.source != HOME or not standing.ok or standing.asked_at is None:
        return False
    age = (now - standing.asked_at).total_seconds()
    return 0 <= age < cfg.sync["standing_cache_seconds"]


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
