"""The desk visit of a patron whose identity was verified: by sign-in, on the phone, or by a network pass."""
from flask import flash, redirect, session, url_for

from node.domain import errors
from node.web.auth import current_staff_name


def begin_pass_visit(cfg, text, now, pending=None):
    """Start the visit on network pass TEXT, verified here (offline); a refusal's banner never shows the pass.

    The one way in for a pass, whether scanned into the pass field or the patron-id field.
    PENDING: a barcode whose scan was lost (auth.repeat_path), offered once the visit has begun.
    """
    from node.domain.patron_pass import verify
    try:
        npass = verify(cfg, text, now)  # verify bounds the length
    except errors.CircnodeError as exc:
        flash(f"Network pass refused: {exc.message} [{exc.code}]", "error")
        return redirect(url_for("desk.checkout"))
    return begin_visit(cfg, npass.institution, npass.home_id, npass.name, now, via="pass", pass_text=npass.text,
                       pending=pending)


def begin_visit(cfg, institution, home_id, name, now, via, pass_text=None, pending=None):
    """Start the desk visit for a verified patron (standing checked), then on to item scanning (PENDING offered)."""
    from node.domain import lending
    visit = {"institution": institution, "id": home_id, "name": name, "provisional": False,
             "loans": [], "verified": via, "asked_at": now.isoformat(), "staff": current_staff_name()}
    if pass_text:
        visit["pass"] = pass_text
    try:
        standing = lending.admit(cfg, lending.Borrower(institution, home_id, pass_text or None), now)
    except errors.CircnodeError as exc:
        flash(f"{cfg.library_name(institution)} patron {name or home_id}: {exc.message}", "error")
        return redirect(url_for("desk.checkout"))
    visit.update(name=name or standing.name, provisional=standing.provisional, standing=standing.to_dict())
    session["visit"] = visit
    how = "network pass" if via == "pass" else f"signed in at {cfg.library_name(institution)}"
    flash(f"{visit['name'] or home_id} ({how}).", "success")
    if standing.provisional:
        flash("The home library is not asked: loans are provisional, within this library's offline limit.",
              "warning")
    return redirect(url_for("desk.scan", barcode=pending or None))
