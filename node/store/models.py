"""Peewee models of the node's tables (the schema itself lives in migrations)."""
import datetime
import functools
import json
import os
import time
import uuid
from decimal import Decimal

from peewee import (BooleanField, CharField, CompositeKey, DateField, DecimalField, Field, ForeignKeyField,
                    IntegerField, Model, TextField)

from node.store.db import database

UTC = datetime.timezone.utc

ITEM_STATES = ("available", "on_loan", "in_transit", "lost", "missing")
LOAN_STATES = ("open", "closed")
ROLES = ("desk", "admin")


def new_uuid():
    """A time-ordered UUID (version 7 layout) so new keys land at the index's end.

    Random UUIDs scatter inserts over a large index (2-5x slower at 100k rows).
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return str(uuid.UUID(int=_uuid7_int(millis, rand)))


def _uuid7_int(millis, rand):
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    return ((millis & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b


class UTCDateTimeField(Field):
    """Aware UTC datetimes stored as fixed-width ISO text (sorts as time)."""

    field_type = "DATETIME"
    FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        # isoformat is the FORMAT above, in C: strftime/strptime were a tenth of a checkout.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

    def python_value(self, value):
        if value is None:
            return None
        if len(value) == 27 and value[10] == "T" and value[19] == "." and value[-1] == "Z":
            return datetime.datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
        return datetime.datetime.strptime(value, self.FORMAT).replace(tzinfo=UTC)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False

    # Hot paths (checkout, inbox) use these: peewee building a query's
    # text cost more than SQLite running it (docs/benchmarks.md).
    @classmethod
    def one(cls, sql, *params):
        """The first row of plain SQL that selects this table's columns, as a model; else None."""
        cursor = cls._meta.database.execute_sql(sql, params)
        row = cursor.fetchone()
        return None if row is None else cls._from_row(_row_fields(cls, sql, cursor.description), row)

    @classmethod
    def all(cls, sql, *params):
        """Every row of plain SQL that selects this table's columns, as models."""
        cursor = cls._meta.database.execute_sql(sql, params)
        fields = _row_fields(cls, sql, cursor.description)
        return [cls._from_row(fields, row) for row in cursor.fetchall()]

    @classmethod
    def _from_row(cls, fields, row):
        instance = cls(__no_default__=1)
        instance.__data__ = {name: convert(value) if convert and value is not None else value
                             for (name, convert), value in zip(fields, row)}
        instance._dirty.clear()
        return instance

    @classmethod
    def add(cls, **values):
        """Insert a new row as ``create`` does, with an INSERT text built once per model.

        Every column is written: a field left unset goes in as the model's
        default or NULL (never the schema's DEFAULT); values are plain values
        or saved models, not expressions; an auto-increment id is assigned.
        """
        row = cls(**values)  # defaults applied as by create
        fields, sql = _insert_statement(cls)
        cursor = cls._meta.database.execute_sql(
            sql, [field.db_value(row.__data__.get(field.name)) for field in fields])
        if cls._meta.auto_increment:
            row.__data__[cls._meta.primary_key.name] = cursor.lastrowid
        row._dirty.clear()
        return row


_ROW_FIELDS = {}


def _row_fields(model, sql, description):
    """(field name, converter) per column of SQL's rows (peewee resolved them per query)."""
    key = (model, sql, tuple(column[0] for column in description))  # SELECT * follows the schema
    fields = _ROW_FIELDS.get(key)
    if fields is None:
        columns = model._meta.columns
        fields = [(columns[name].name, columns[name].python_value) if name in columns else (name, None)
                  for name in key[2]]
        if len(_ROW_FIELDS) < 1000:  # the hot paths' few statements; never a cache of every query
            _ROW_FIELDS[key] = fields
    return fields


@functools.lru_cache(maxsize=None)
def _insert_statement(model):
    meta = model._meta
    fields = [field for field in meta.sorted_fields
              if not (meta.auto_increment and field is meta.primary_key)]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    marks = ", ".join("?" for _ in fields)
    return fields, f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks})'


ITEM_OF = "SELECT * FROM item WHERE owner = ? AND barcode = ?"
# LIMIT 2: two rows that differ only in case are ambiguous, and the caller must see both.
ITEM_OF_ANY_CASE = "SELECT * FROM item WHERE owner = ? AND barcode = ? COLLATE NOCASE LIMIT 2"
PATRON_OF = "SELECT * FROM patron WHERE institution = ? AND home_id = ?"


class Item(BaseModel):
    owner = CharField()
    barcode = CharField()
    title = TextField(default="")
    call_number = TextField(default="")
    item_type = CharField(default="")
    replacement_cost = DecimalField(max_digits=10, decimal_places=2, null=True)
    status = CharField(default="available")
    updated_at = UTCDateTimeField()  # the caller passes its now

    class Meta:
        indexes = ((("owner", "barcode"), True),)

    @classmethod
    def of(cls, owner, barcode):
        """OWNER's item with BARCODE, or None."""
        return cls.one(ITEM_OF, owner, barcode)

    @classmethod
    def of_any_case(cls, owner, barcode):
        """OWNER's items whose barcode is BARCODE in any case (one, or two when only case tells them apart)."""
        return cls.all(ITEM_OF_ANY_CASE, owner, barcode)

    def to_dict(self):
        return {"institution": self.owner, "barcode": self.barcode, "title": self.title,
                "call_number": self.call_number, "item_type": self.item_type,
                "replacement_cost": None if self.replacement_cost is None else str(self.replacement_cost),
                "status": self.status}


class Patron(BaseModel):
    institution = CharField()
    home_id = CharField()
    name = TextField(default="")
    email = TextField(default="")
    expires_on = DateField(null=True)
    blocked = BooleanField(default=False)
    block_reason = TextField(default="")
    updated_at = UTCDateTimeField()  # the caller passes its now

    class Meta:
        indexes = ((("institution", "home_id"), True),)

    @classmethod
    def of(cls, institution, home_id):
        """The patron of INSTITUTION with HOME_ID, or None."""
        return cls.one(PATRON_OF, institution, home_id)

    def to_dict(self):
        return {"institution": self.institution, "id": self.home_id, "name": self.name,
                "email": self.email,
                "expires_on": self.expires_on.isoformat() if self.expires_on else None,
                "blocked": self.blocked}


class Loan(BaseModel):
    id = CharField(primary_key=True, default=new_uuid)
    item = ForeignKeyField(Item, backref="loans")
    patron = ForeignKeyField(Patron, backref="loans", null=True)
    lender = CharField()
    checked_out_at = UTCDateTimeField()
    due_at = UTCDateTimeField()
    renewals = IntegerField(default=0)
    status = CharField(default="open")
    returned_at = UTCDateTimeField(null=True)
    returned_at_institution = CharField(null=True)
    provisional = BooleanField(default=False)
    disputed = BooleanField(default=False)
    dispute_reason = TextField(default="")
    made_offline = BooleanField(default=False)
    updated_at = UTCDateTimeField()  # the caller passes its now
    lost_at = UTCDateTimeField(null=True)  # declared lost by the lender (migration 4)

    def is_overdue(self, now):
        return self.status == "open" and self.due_at < now

    def to_dict(self, tz, now=None):
        """The loan as the JSON API shows it; times in the library's zone with offset."""
        def local(value):
            return value.astimezone(tz).isoformat() if value else None
        patron = ({"institution": self.patron.institution, "id": self.patron.home_id}
                  if self.patron_id else None)
        body = {
            "id": self.id, "status": self.status, "lender": self.lender,
            "item": {"institution": self.item.owner, "barcode": self.item.barcode,
                     "title": self.item.title},
            "patron": patron,
            "checked_out_at": local(self.checked_out_at), "due_at": local(self.due_at),
            "renewals": self.renewals, "returned_at": local(self.returned_at),
            "returned_at_institution": self.returned_at_institution,
            "provisional": self.provisional, "disputed": self.disputed,
            "dispute_reason": self.dispute_reason or None, "made_offline": self.made_offline,
            "lost": self.lost_at is not None, "lost_at": local(self.lost_at),
        }
        if now is not None:
            body["overdue"] = self.is_overdue(now)
        return body


class OutboxEvent(BaseModel):
    destination = CharField()
    sequence = IntegerField()
    event_id = CharField(unique=True)
    type = CharField()
    payload = TextField()
    created_at = UTCDateTimeField()  # the caller passes its now
    state = CharField(default="pending")
    attempts = IntegerField(default=0)
    last_error = TextField(default="")
    delivered_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "outbox_event"
        indexes = ((("destination", "sequence"), True),
                   (("destination", "state", "sequence"), False))

    @property
    def data(self):
        return json.loads(self.payload)


class Staff(BaseModel):
    name = CharField(unique=True)
    role = CharField()
    password_hash = TextField()
    active = BooleanField(default=True)
    created_at = UTCDateTimeField()  # the caller passes its now
    last_sign_in_at = UTCDateTimeField(null=True)  # at the desk; API tokens keep their own last use


class ApiToken(BaseModel):
    staff = ForeignKeyField(Staff, backref="tokens", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    created_at = UTCDateTimeField()  # the caller passes its now
    last_used_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_token"


class StaffSession(BaseModel):
    """A signed-in desk session; deleting the row ends it wherever the cookie is."""

    id = CharField(primary_key=True)  # SHA-256 of the random id in the cookie
    staff = ForeignKeyField(Staff, backref="sessions", on_delete="CASCADE")
    created_at = UTCDateTimeField()
    last_seen_at = UTCDateTimeField()

    class Meta:
        table_name = "staff_session"


class LoginFailure(BaseModel):
    key = CharField()
    at = UTCDateTimeField()

    class Meta:
        table_name = "login_failure"
        indexes = ((("key", "at"), False),)


class AuditLog(BaseModel):
    at = UTCDateTimeField()  # the caller passes its now
    staff = CharField()
    action = CharField()
    target = TextField(default="")
    detail = TextField(default="")

    class Meta:
        table_name = "audit_log"


class InboxRecord(BaseModel):
    """One event received from a peer: its (origin, sequence) is the dedup key."""

    origin = CharField()
    sequence = IntegerField()
    event_id = CharField()
    type = CharField()
    received_at = UTCDateTimeField()
    state = CharField()  # applied | rejected
    reason = TextField(default="")
    payload = TextField(null=True)  # trimmed to NULL after the dedup window

    class Meta:
        table_name = "inbox_record"
        primary_key = CompositeKey("origin", "sequence")


# Every row an inbox batch writes carries the same ``now``: its text is worked out once.
received_at_text = functools.lru_cache(maxsize=8)(InboxRecord.received_at.db_value)


class PeerState(BaseModel):
    """Per peer: how far we have applied its events, and how pushing to it goes."""

    peer = CharField(primary_key=True)
    received_through = IntegerField(default=0)
    last_success_at = UTCDateTimeField(null=True)
    last_error = TextField(default="")
    last_error_at = UTCDateTimeField(null=True)
    next_attempt_at = UTCDateTimeField(null=True)
    failures = IntegerField(default=0)

    class Meta:
        table_name = "peer_state"


class PeerNonce(BaseModel):
    key_id = CharField()
    nonce = CharField()
    created = UTCDateTimeField()

    class Meta:
        table_name = "peer_nonce"
        primary_key = CompositeKey("key_id", "nonce")


# --- billing, notices and job runs (issue 5, migration 4; docs/billing.md) ---
# Money is stored as whole cents (CentsField): SQLite has no decimal type and
# its NUMERIC affinity would turn 12.10 into a float.  Python sees Decimal.

CENT = Decimal("0.01")


class CentsField(IntegerField):
    """A Decimal amount with at most 2 decimals, stored as an integer of cents."""

    def db_value(self, value):
        if value is None:
            return None
        cents = Decimal(value) * 100
        if cents != cents.to_integral_value():
            raise ValueError("amounts have at most 2 decimals")
        return int(cents)

    def python_value(self, value):
        return None if value is None else cents_to_money(value)


def cents_to_money(cents):
    return Decimal(int(cents or 0)).scaleb(-2).quantize(CENT)


class BursarBatch(BaseModel):
    created_at = UTCDateTimeField()
    staff = CharField(default="")
    fee_count = IntegerField()
    totals = TextField(default="")  # "EUR 120.00; CHF 5.00"

    class Meta:
        table_name = "bursar_batch"


class Fee(BaseModel):
    """One charge (or, negative, one refund credit) of a lender on a patron's home account.

    The lender assigns the id; lender and home node keep the same row, the
    lender's copy showing the status the home node reported.
    """

    id = CharField(primary_key=True, default=new_uuid)
    lender = CharField()
    home = CharField()  # the patron's institution: where the fee is collected
    loan_id = CharField()
    patron = ForeignKeyField(Patron, backref="fees", null=True)  # NULL once anonymised
    item_barcode = TextField(default="")
    item_title = TextField(default="")
    reason = CharField()  # fine | replacement | processing | refund
    amount = CentsField()
    currency = CharField()
    refund_of = CharField(null=True)
    assessed_at = UTCDateTimeField()
    status = CharField(default="open")  # open | paid | waived
    paid = CentsField(default=0)
    settled_at = UTCDateTimeField(null=True)
    bursar_batch = ForeignKeyField(BursarBatch, backref="fees", null=True)
    updated_at = UTCDateTimeField()  # the caller passes its now

    class Meta:
        indexes = ((("loan_id", "reason"), True),)

    @property
    def outstanding(self):
        return self.amount - self.paid if self.status == "open" else Decimal("0.00")

    def to_dict(self, tz):
        def local(value):
            return value.astimezone(tz).isoformat() if value else None
        patron = ({"institution": self.patron.institution, "id": self.patron.home_id}
                  if self.patron_id else None)
        return {"id": self.id, "lender": self.lender, "home": self.home, "loan_id": self.loan_id,
                "patron": patron, "item": {"barcode": self.item_barcode, "title": self.item_title},
                "amount": str(self.amount), "currency": self.currency, "reason": self.reason,
                "refund_of": self.refund_of, "status": self.status, "paid": str(self.paid),
                "outstanding": str(self.outstanding), "assessed_at": local(self.assessed_at),
                "settled_at": local(self.settled_at), "bursar_batch": self.bursar_batch_id}


class FeePayment(BaseModel):
    """A payment or waiver recorded at the home node (and copied to the lender)."""

    id = CharField(primary_key=True, default=new_uuid)
    fee = ForeignKeyField(Fee, backref="payments")
    kind = CharField()  # payment | waiver
    amount = CentsField()  # same sign as the fee: a credit paid out is negative
    at = UTCDateTimeField()
    staff = CharField(default="")
    note = TextField(default="")
    method = CharField(default="")  # cash, card, transfer, other (billing.METHODS); "" for waivers and peers' rows

    class Meta:
        table_name = "fee_payment"


class Notice(BaseModel):
    """One notice of one kind for one loan: the row that makes it go out once."""

    loan_id = CharField()
    kind = CharField()  # courtesy | overdue | lost
    stage = IntegerField(default=0)  # for overdue: the day after the due date it belongs to
    recipient = TextField(default="")
    state = CharField(default="pending")  # pending | sent | skipped
    attempts = IntegerField(default=0)
    last_error = TextField(default="")
    created_at = UTCDateTimeField()
    next_attempt_at = UTCDateTimeField(null=True)
    sent_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("loan_id", "kind", "stage"), True), (("state", "next_attempt_at"), False))


class JobRun(BaseModel):
    """The last run of each daily job, shown to admins."""

    name = CharField(primary_key=True)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    as_of = UTCDateTimeField(null=True)
    summary = TextField(default="")
    error = TextField(default="")

    class Meta:
        table_name = "job_run"


class SamlRequest(BaseModel):
    """An AuthnRequest we sent (its ID is the InResponseTo we accept), answered at most once."""

    id = CharField(primary_key=True)
    institution = CharField()
    purpose = CharField()  # desk | patron | phone
    handle_hash = CharField(default="")  # binds the answer to the browser that asked
    phone_link_id = IntegerField(null=True)
    state = CharField(default="pending")  # pending | consumed | verified | used | refused
    identity = TextField(null=True)  # JSON of the verified identity until picked up
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "saml_request"
        indexes = ((("expires_at",), False),)


class SamlAssertion(BaseModel):
    """An assertion already consumed; kept until it expires so a replay is refused."""

    issuer = CharField()
    assertion_id = CharField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "saml_assertion"
        primary_key = CompositeKey("issuer", "assertion_id")
        indexes = ((("expires_at",), False),)


class PhoneLink(BaseModel):
    """A single-use sign-in link the desk shows as a QR code; only its hash is stored."""

    token_hash = CharField(unique=True)
    institution = CharField()
    state = CharField(default="new")  # new | opened | verified | used
    identity = TextField(null=True)
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "phone_link"


class StandingLookup(BaseModel):
    """One standing question a peer asked about one of our patrons, and the code it was answered."""

    peer = CharField()
    home_id = CharField()  # our own patron's id: shown to our admins, never written to a log
    asked_at = UTCDateTimeField()
    code = CharField()  # ok, or the refusal code (patron_unknown, patron_blocked, ...)

    class Meta:
        table_name = "standing_lookup"
        indexes = ((("peer", "asked_at"), False), (("home_id", "asked_at"), False), (("asked_at",), False))


class Sip2Account(BaseModel):
    """A self-check kiosk's login (SIP2 93): its password is hashed like a staff password."""

    name = CharField(unique=True)
    password_hash = TextField()
    location = CharField(default="")
    active = BooleanField(default=True)
    created_at = UTCDateTimeField()  # the caller passes its now
    last_login_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "sip2_account"


class AppliedOnce(BaseModel):
    """A business action that must take effect once (a kiosk's "no block" transaction): its key."""

    key = CharField(primary_key=True)
    applied_at = UTCDateTimeField()

    class Meta:
        table_name = "applied_once"
        indexes = ((("applied_at",), False),)


ALL_MODELS = [InboxRecord, PeerState, PeerNonce, Item, Patron, Loan, OutboxEvent, Staff, ApiToken, StaffSession, LoginFailure, AuditLog,
              BursarBatch, Fee, FeePayment, Notice, JobRun, SamlRequest, SamlAssertion, PhoneLink, StandingLookup,
              Sip2Account, AppliedOnce]
