"""What a node forgets, and when (the page that lists what it shares with peers: node/web/privacy.py).

The daily purge (``[privacy]``): a returned loan with no open fee loses its
patron link after ``loan_retention_days`` (its notices go, and a visiting
patron with nothing left here is forgotten); delivered and received event
payloads are trimmed to their dedup record after ``event_payload_days``;
dedup records go after ``[sync] dedup_days``; settled fees lose their patron
after ``fee_audit_days``; peers' standing lookups after
``standing_lookup_days``.  Logs never name patrons or titles: counts only.
"""
import datetime
import logging
import os

from node.domain.ports import retention
from node.store.db import database
from node.store.models import Fee, FeePayment, InboxRecord, Loan, Notice, Patron

log = logging.getLogger(__name__)
CHUNK = 500

def _chunks(ids):
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def purge(cfg, now):
    """Forget what the retention settings say is no longer needed; return counts."""
    settings = cfg.sections["privacy"]
    counts = {"loans_unlinked": _unlink_loans(cfg, now - datetime.timedelta(days=settings["loan_retention_days"]))}
    counts["fees_anonymised"] = _anonymise_fees(now - datetime.timedelta(days=settings["fee_audit_days"]))
    counts["patrons_forgotten"] = _forget_visitors(cfg)  # after the two above: they free patrons
    counts["payloads_trimmed"] = _trim_payloads(now - datetime.timedelta(days=settings["event_payload_days"]))
    with database.atomic():
        horizon = now - datetime.timedelta(days=cfg.sync["dedup_days"])
        counts["dedup_records_dropped"] = InboxRecord.delete().where(InboxRecord.received_at < horizon).execute()
    counts["mail_files_removed"] = _remove_mail_files(cfg, now - datetime.timedelta(
        days=settings["loan_retention_days"]))
    counts.update(retention.purge(cfg, now))  # the sync layer's rows: peers' standing lookups
    if any(counts.values()):
        log.info("privacy purge: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _unlink_loans(cfg, horizon):
    open_fees = Fee.select(Fee.loan_id).where(Fee.status == "open")
    ids = [row.id for row in Loan.select(Loan.id).where(
        (Loan.status == "closed") & (Loan.returned_at < horizon) & Loan.patron.is_null(False)
        & Loan.id.not_in(open_fees))]
    for chunk in _chunks(ids):
        with database.atomic():
            Loan.update(patron=None).where(Loan.id.in_(chunk)).execute()
            Notice.delete().where(Notice.loan_id.in_(chunk)).execute()
    return len(ids)


def _forget_visitors(cfg):
    """Delete visiting patrons' records (names, emails) that no loan or fee refers to any more."""
    with database.atomic():
        used_by_loans = Loan.select(Loan.patron).where(Loan.patron.is_null(False))
        used_by_fees = Fee.select(Fee.patron).where(Fee.patron.is_null(False))
        return Patron.delete().where((Patron.institution != cfg.institution) & Patron.id.not_in(used_by_loans)
                                     & Patron.id.not_in(used_by_fees)).execute()


def _trim_payloads(horizon):
    stamp = horizon.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with database.atomic():
        # The envelope keeps its shape (occurred_at, data) so a resend stays well-formed.
        cursor = database.execute_sql(
            "UPDATE outbox_event SET payload = json_object('occurred_at', json_extract(payload, '$.occurred_at'),"
            " 'data', json_object(), 'trimmed', 1)"
            " WHERE state IN ('delivered', 'rejected') AND delivered_at < ?"
            " AND json_extract(payload, '$.trimmed') IS NULL", (stamp,))
        outbox = cursor.rowcount
        inbox = InboxRecord.update(payload=None).where(
            (InboxRecord.received_at < horizon) & InboxRecord.payload.is_null(False)).execute()
    return outbox + inbox


def _anonymise_fees(horizon):
    ids = [fee.id for fee in Fee.select(Fee.id).where(
        (Fee.status != "open") & (Fee.settled_at < horizon) & Fee.patron.is_null(False))]
    for chunk in _chunks(ids):
        with database.atomic():
            Fee.update(patron=None).where(Fee.id.in_(chunk)).execute()
            FeePayment.update(note="").where(FeePayment.fee.in_(chunk)).execute()
    return len(ids)


def _remove_mail_files(cfg, horizon):
    """Notices written as files (no mail server configured) go with the loans' patron links."""
    folder = os.path.join(cfg.data_dir, "mail")
    if not os.path.isdir(folder):
        return 0
    removed = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".eml") and os.path.getmtime(path) < horizon.timestamp():
            os.remove(path)
            removed += 1
    return removed
