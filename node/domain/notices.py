"""Notices by email: courtesy before the due date, overdue, and lost/billed.

The lender sends them: it owns the loan terms.  Each (loan, kind, stage) has
one ``notice`` row, so a notice goes out once however often the job runs;
the row is planned by the daily job and sent after the planning commits, so
a slow or dead mail server never holds a transaction, let alone the desk.
A notice that cannot be sent stays pending and is retried with a doubling
delay (``[smtp] retry_minutes``, at most a day).  With ``[smtp] host`` empty
the messages are written as .eml files to ``data_dir/mail`` instead.
"""
import datetime
import logging
import os
import smtplib
import ssl
import urllib.parse
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from jinja2 import Environment, FileSystemLoader, select_autoescape

from node.domain.calendar import local_day
from node.store.db import database
from node.store.models import Fee, Item, Loan, Notice, Patron

log = logging.getLogger(__name__)
KINDS = ("courtesy", "overdue", "lost")
LEASE = datetime.timedelta(minutes=10)  # a claimed notice is not claimed again meanwhile
MAX_DELAY = datetime.timedelta(days=1)
MAX_ATTEMPTS = 16
SUBJECTS = {"courtesy": "Due soon: {title}", "overdue": "Overdue: {title}",
            "lost": "Billed as lost: {title}"}
_env = None


def templates_folder():
    """Top-level templates/ in a checkout, else the copy installed with the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, os.pardir, os.pardir, "templates"),
                      os.path.join(os.sys.prefix, "share", "circnode", "templates")):
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    raise RuntimeError("circnode templates not found")


def _templates():
    global _env
    if _env is None:
        _env = Environment(loader=FileSystemLoader(os.path.join(templates_folder(), "notices")),
                           autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    return _env


# --- planning: which notices are due (inside one transaction) ----------------

def plan(cfg, now, kinds=KINDS):
    """Record the notices due as of NOW for this lender's open loans; return how many were added."""
    today = local_day(now, cfg.tz)
    soon = max(rules["courtesy_notice_days"] for rules in cfg.policy.values())
    query = (Loan.select(Loan, Item, Patron).join(Item).switch(Loan).join(Patron)
             .where((Loan.lender == cfg.institution) & (Loan.status == "open")
                    & (Loan.due_at < now + datetime.timedelta(days=soon + 1))))
    added = 0
    with database.atomic():
        for loan in query:
            for kind, stage, state in _due_notices(cfg, loan, today, kinds):
                added += _add(loan, kind, stage, state, now)
    return added


def _due_notices(cfg, loan, today, kinds):
    """(kind, stage, state) of each notice LOAN should have by TODAY."""
    rules = cfg.policy_for(loan.item.item_type)
    due_day = local_day(loan.due_at, cfg.tz)
    if loan.lost_at is not None:
        return [("lost", 0, "pending")] if "lost" in kinds else []
    if due_day < today:
        if "overdue" not in kinds:
            return []
        late = (today - due_day).days
        reached = [day for day in rules["overdue_notice_days"] if 0 < day <= late]
        # Catching up after days without a run sends the latest notice only.
        return [("overdue", day, "pending" if day == reached[-1] else "skipped") for day in reached]
    days_left = (due_day - today).days
    if "courtesy" in kinds and 0 < rules["courtesy_notice_days"] and days_left <= rules["courtesy_notice_days"]:
        return [("courtesy", 0, "pending")]
    return []


def _add(loan, kind, stage, state, now):
    if Notice.get_or_none(loan_id=loan.id, kind=kind, stage=stage):
        return 0
    recipient = loan.patron.email.strip() if loan.patron_id else ""
    if not recipient and state == "pending":
        state = "skipped"
    Notice.create(loan_id=loan.id, kind=kind, stage=stage, recipient=recipient, state=state, created_at=now,
                  next_attempt_at=now, last_error="" if recipient else "no email address")
    return 1 if state == "pending" else 0


# --- composing --------------------------------------------------------------

def compose(cfg, notice, now):
    """The email of NOTICE: plain text and HTML from templates/notices/<kind>.txt|.html."""
    loan = Loan.select(Loan, Item, Patron).join(Item).switch(Loan).join(Patron).where(Loan.id == notice.loan_id).get()
    fees = list(Fee.select().where(Fee.loan_id == loan.id).order_by(Fee.assessed_at, Fee.reason))
    home = loan.patron.institution
    context = {
        "library": cfg.node["name"], "library_url": cfg.node["base_url"], "patron_name": loan.patron.name,
        "home_library": cfg.node["name"] if home == cfg.institution else getattr(cfg.peers.get(home), "name", home),
        "item": loan.item, "due": loan.due_at.astimezone(cfg.tz).strftime("%A %d %B %Y, %H:%M"),
        "days_overdue": max(0, (local_day(now, cfg.tz) - local_day(loan.due_at, cfg.tz)).days),
        "stage": notice.stage, "fees": fees,
        "total": sum((fee.amount for fee in fees), 0), "currency": fees[0].currency if fees else "",
    }
    text = _templates().get_template(f"{notice.kind}.txt").render(context)
    html = _templates().get_template(f"{notice.kind}.html").render(context)
    message = EmailMessage()
    message["Subject"] = SUBJECTS[notice.kind].format(title=loan.item.title or loan.item.barcode)
    message["From"] = formataddr((cfg.node["name"], sender(cfg)))
    message["To"] = notice.recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=_host(cfg))
    message["X-Circnode-Notice"] = f"{notice.kind}-{notice.stage}" if notice.kind == "overdue" else notice.kind
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _host(cfg):
    return urllib.parse.urlsplit(cfg.node["base_url"]).hostname or "localhost"


def sender(cfg):
    return cfg.sections["smtp"]["sender"] or f"circnode@{_host(cfg)}"


# --- sending ----------------------------------------------------------------

class _Mailer:
    """One SMTP connection for a batch of notices (or a folder of .eml files)."""

    def __init__(self, cfg, now):
        self.cfg, self.smtp, self.connection, self.now = cfg, cfg.sections["smtp"], None, now

    def send(self, message):
        if not self.smtp["host"]:
            folder = os.path.join(self.cfg.data_dir, "mail")
            os.makedirs(folder, exist_ok=True)
            name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
            path = os.path.join(folder, name)
            with open(path, "wb") as handle:
                handle.write(bytes(message))
            # The file's time is the notice's time (``now``), the clock the retention purge uses;
            # with the wall clock, a run with --at in the future purged the files it had just written.
            os.utime(path, (self.now.timestamp(), self.now.timestamp()))
            return
        if self.connection is None:
            self.connection = smtplib.SMTP(self.smtp["host"], self.smtp["port"],
                                           timeout=self.smtp["timeout_seconds"])
            if self.smtp["starttls"]:
                self.connection.starttls(context=ssl.create_default_context())
            if self.smtp["username"]:
                self.connection.login(self.smtp["username"], self.smtp["password"])
        self.connection.send_message(message)

    def close(self):
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                pass


def send_due(cfg, now, limit=500):
    """Send the pending notices whose time has come; return counts of sent and waiting."""
    with database.atomic():
        due = list(Notice.select().where((Notice.state == "pending") & (Notice.next_attempt_at <= now))
                   .order_by(Notice.id).limit(limit))
        Notice.update(next_attempt_at=now + LEASE).where(Notice.id.in_([n.id for n in due])).execute()
    mailer, sent, waiting = _Mailer(cfg, now), 0, 0
    try:
        for position, notice in enumerate(due):
            try:
                message = compose(cfg, notice, now)
            except Loan.DoesNotExist:  # the loan lost its patron link (privacy purge) meanwhile
                _mark(notice, "skipped", now, "no patron")
                continue
            try:
                mailer.send(message)
            except (OSError, smtplib.SMTPException) as exc:
                if isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError,
                                    smtplib.SMTPConnectError)) or mailer.connection is None:
                    # The server is away: everything left in this batch waits for the next try.
                    waiting += _retry_later(cfg, due[position:], exc, now)
                    break
                waiting += _retry_later(cfg, [notice], exc, now)
            else:
                _mark_sent(notice, now)
                sent += 1
    finally:
        mailer.close()
    if due:
        log.info("notices: %d sent, %d waiting to be retried", sent, waiting)
    return {"sent": sent, "waiting": waiting}


def _mark_sent(notice, now):
    _mark(notice, "sent", now)


def _mark(notice, state, now, error=""):
    with database.atomic():
        Notice.update(state=state, sent_at=now if state == "sent" else None, attempts=Notice.attempts + 1,
                      last_error=error).where(Notice.id == notice.id).execute()


def _retry_later(cfg, notices, exc, now):
    # The error's class and SMTP code only: its text may quote the address.
    reason = exc.__class__.__name__ + (f" {exc.smtp_code}" if hasattr(exc, "smtp_code") else "")
    log.warning("%d notices not sent (%s); will retry", len(notices), reason)
    base = datetime.timedelta(minutes=cfg.sections["smtp"]["retry_minutes"])
    with database.atomic():
        for notice in notices:
            delay = min(base * 2 ** min(notice.attempts, 10), MAX_DELAY)
            # A notice refused for a week (a bad address) stops being tried; the queue shows it.
            state = "failed" if notice.attempts + 1 >= MAX_ATTEMPTS else "pending"
            Notice.update(attempts=Notice.attempts + 1, last_error=reason, next_attempt_at=now + delay,
                          state=state).where(Notice.id == notice.id).execute()
    return len(notices)


def send_due_safely(cfg, now_fn):
    """The scheduler's retry job: never raises."""
    try:
        return send_due(cfg, now_fn())
    except Exception:  # a job must never kill the scheduler
        log.exception("sending notices crashed")
        return None


def queue_counts():
    """{state: {kind: count}} of all notices, for the admin page."""
    from peewee import fn
    counts = {}
    rows = (Notice.select(Notice.state, Notice.kind, fn.COUNT(Notice.id))
            .group_by(Notice.state, Notice.kind).tuples())
    for state, kind, count in rows:
        counts.setdefault(state, {})[kind] = count
    return counts
