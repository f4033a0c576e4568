"""Versioned schema migrations: an upgraded node keeps its data.

Each migration is a list of SQL statements applied in one transaction, and
``schema_version`` records the ones applied.  Never edit a released
migration; append a new one.  ``tests/store/test_migrations.py`` checks that the
migrated schema matches the peewee models.
"""
import datetime
import logging

log = logging.getLogger(__name__)

MIGRATIONS = {
    1: [
        """CREATE TABLE item (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            barcode TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            call_number TEXT NOT NULL DEFAULT '',
            item_type TEXT NOT NULL DEFAULT '',
            replacement_cost DECIMAL(10,2),
            status TEXT NOT NULL DEFAULT 'available',
            updated_at DATETIME NOT NULL)""",
        "CREATE UNIQUE INDEX item_owner_barcode ON item (owner, barcode)",
        "CREATE INDEX item_barcode ON item (barcode)",
        """CREATE TABLE patron (
            id INTEGER PRIMARY KEY,
            institution TEXT NOT NULL,
            home_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            expires_on DATE,
            blocked INTEGER NOT NULL DEFAULT 0,
            block_reason TEXT NOT NULL DEFAULT '',
            updated_at DATETIME NOT NULL)""",
        "CREATE UNIQUE INDEX patron_institution_home_id ON patron (institution, home_id)",
        """CREATE TABLE loan (
            id TEXT PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES item (id),
            patron_id INTEGER REFERENCES patron (id),
            lender TEXT NOT NULL,
            checked_out_at DATETIME NOT NULL,
            due_at DATETIME NOT NULL,
            renewals INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'open',
            returned_at DATETIME,
            returned_at_institution TEXT,
            provisional INTEGER NOT NULL DEFAULT 0,
            disputed INTEGER NOT NULL DEFAULT 0,
            dispute_reason TEXT NOT NULL DEFAULT '',
            made_offline INTEGER NOT NULL DEFAULT 0,
            updated_at DATETIME NOT NULL)""",
        # The rule "one item, at most one open loan" lives in the database so
        # that no race between two desks can break it.
        "CREATE UNIQUE INDEX loan_one_open_per_item ON loan (item_id) WHERE status = 'open'",
        "CREATE INDEX loan_patron_status ON loan (patron_id, status)",
        "CREATE INDEX loan_status_due ON loan (status, due_at)",
        """CREATE TABLE outbox_event (
            id INTEGER PRIMARY KEY,
            destination TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at DATETIME NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            delivered_at DATETIME)""",
        "CREATE UNIQUE INDEX outbox_destination_sequence ON outbox_event (destination, sequence)",
        "CREATE INDEX outbox_destination_state ON outbox_event (destination, state, sequence)",
        """CREATE TABLE staff (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            created_at DATETIME NOT NULL)""",
        """CREATE TABLE api_token (
            id INTEGER PRIMARY KEY,
            staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE,
            created_at DATETIME NOT NULL,
            last_used_at DATETIME)""",
        """CREATE TABLE staff_session (
            id TEXT PRIMARY KEY,
            staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
            created_at DATETIME NOT NULL,
            last_seen_at DATETIME NOT NULL)""",
        """CREATE TABLE login_failure (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at DATETIME NOT NULL)""",
        "CREATE INDEX login_failure_key_at ON login_failure (key, at)",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at DATETIME NOT NULL,
            staff TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '')""",
    ],
    2: [
        # Sync: what each peer sent us (the dedup record), per-peer sync state,
        # and the nonces of signed requests seen within the skew window.
        """CREATE TABLE inbox_record (
            origin TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            received_at DATETIME NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            payload TEXT,
            PRIMARY KEY (origin, sequence))""",
        "CREATE INDEX inbox_record_received_at ON inbox_record (received_at)",
        """CREATE TABLE peer_state (
            peer TEXT PRIMARY KEY,
            received_through INTEGER NOT NULL DEFAULT 0,
            last_success_at DATETIME,
            last_error TEXT NOT NULL DEFAULT '',
            last_error_at DATETIME,
            next_attempt_at DATETIME,
            failures INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE peer_nonce (
            key_id TEXT NOT NULL,
            nonce TEXT NOT NULL,
            created DATETIME NOT NULL,
            PRIMARY KEY (key_id, nonce))""",
        "CREATE INDEX peer_nonce_created ON peer_nonce (created)",
    ],
    3: [
        # The admin sync queue lists these few rows without walking history
        # (sync/queue.py); a partial index holds only the rows it shows.
        "CREATE INDEX loan_needs_attention ON loan (checked_out_at) WHERE provisional = 1 OR disputed = 1",
        "CREATE INDEX inbox_record_refused ON inbox_record (origin, received_at) WHERE state = 'rejected'",
    ],
    4: [
        # Billing, notices and daily jobs (docs/billing.md).  Amounts are whole
        # cents: SQLite's NUMERIC affinity would store decimals as floats.
        "ALTER TABLE loan ADD COLUMN lost_at DATETIME",
        """CREATE TABLE bursar_batch (
            id INTEGER PRIMARY KEY,
            created_at DATETIME NOT NULL,
            staff TEXT NOT NULL DEFAULT '',
            fee_count INTEGER NOT NULL,
            totals TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE fee (
            id TEXT PRIMARY KEY,
            lender TEXT NOT NULL,
            home TEXT NOT NULL,
            loan_id TEXT NOT NULL,
            patron_id INTEGER REFERENCES patron (id),
            item_barcode TEXT NOT NULL DEFAULT '',
            item_title TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL,
            amount INTEGER NOT NULL,
            currency TEXT NOT NULL,
            refund_of TEXT,
            assessed_at DATETIME NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            paid INTEGER NOT NULL DEFAULT 0,
            settled_at DATETIME,
            bursar_batch_id INTEGER REFERENCES bursar_batch (id),
            updated_at DATETIME NOT NULL)""",
        # One fee per loan and reason: a job run twice, or a return event
        # applied twice, cannot bill twice.
        "CREATE UNIQUE INDEX fee_loan_id_reason ON fee (loan_id, reason)",
        "CREATE INDEX fee_patron_status ON fee (patron_id, status)",
        "CREATE INDEX fee_lender_assessed ON fee (lender, assessed_at)",
        "CREATE INDEX fee_home_unexported ON fee (home, assessed_at) WHERE bursar_batch_id IS NULL",
        "CREATE INDEX fee_bursar_batch ON fee (bursar_batch_id)",
        """CREATE TABLE fee_payment (
            id TEXT PRIMARY KEY,
            fee_id TEXT NOT NULL REFERENCES fee (id),
            kind TEXT NOT NULL,
            amount INTEGER NOT NULL,
            at DATETIME NOT NULL,
            staff TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX fee_payment_fee ON fee_payment (fee_id)",
        """CREATE TABLE notice (
            id INTEGER PRIMARY KEY,
            loan_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            stage INTEGER NOT NULL DEFAULT 0,
            recipient TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            next_attempt_at DATETIME,
            sent_at DATETIME)""",
        "CREATE UNIQUE INDEX notice_loan_id_kind_stage ON notice (loan_id, kind, stage)",
        "CREATE INDEX notice_state_next_attempt_at ON notice (state, next_attempt_at)",
        """CREATE TABLE job_run (
            name TEXT PRIMARY KEY,
            started_at DATETIME,
            finished_at DATETIME,
            as_of DATETIME,
            summary TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX loan_lost_at ON loan (lost_at) WHERE lost_at IS NOT NULL",
    ],
    5: [
        # Patron sign-in (docs/identity.md).  SAML requests we sent, kept
        # server-side so InResponseTo is checked without a cookie (a
        # cross-site POST carries none) and each is answered once.
        """CREATE TABLE saml_request (
            id TEXT PRIMARY KEY,
            institution TEXT NOT NULL,
            purpose TEXT NOT NULL,
            handle_hash TEXT NOT NULL DEFAULT '',
            phone_link_id INTEGER,
            state TEXT NOT NULL DEFAULT 'pending',
            identity TEXT,
            created_at DATETIME NOT NULL,
            expires_at DATETIME NOT NULL)""",
        "CREATE INDEX saml_request_expires_at ON saml_request (expires_at)",
        # Assertions consumed, until they expire: a replay is refused by the key.
        """CREATE TABLE saml_assertion (
            issuer TEXT NOT NULL,
            assertion_id TEXT NOT NULL,
            expires_at DATETIME NOT NULL,
            PRIMARY KEY (issuer, assertion_id))""",
        "CREATE INDEX saml_assertion_expires_at ON saml_assertion (expires_at)",
        # Single-use sign-in links shown as a QR code at the desk.
        """CREATE TABLE phone_link (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            institution TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'new',
            identity TEXT,
            created_at DATETIME NOT NULL,
            expires_at DATETIME NOT NULL)""",
    ],
    6: [
        # Receiving an item back from transit looks up its last loan; without
        # this index that scanned every loan ever made (docs/benchmarks.md).
        "CREATE INDEX loan_item_returned ON loan (item_id, returned_at)",
    ],
    7: [
        # Standing lookups (issue 11, sync/lookups.py): which peer asked about
        # which of our patrons, when, and the answer's code.  Each index serves
        # one query: the rate limit and the peer filter, the patron filter,
        # and the unfiltered list and the purge.
        """CREATE TABLE standing_lookup (
            id INTEGER PRIMARY KEY,
            peer TEXT NOT NULL,
            home_id TEXT NOT NULL,
            asked_at DATETIME NOT NULL,
            code TEXT NOT NULL)""",
        "CREATE INDEX standing_lookup_peer_asked_at ON standing_lookup (peer, asked_at)",
        "CREATE INDEX standing_lookup_home_id_asked_at ON standing_lookup (home_id, asked_at)",
        "CREATE INDEX standing_lookup_asked_at ON standing_lookup (asked_at)",
    ],
    8: [
        # Staff management (issue 12, point 8): `circnode staff list` shows
        # when each member last signed in at the desk.
        "ALTER TABLE staff ADD COLUMN last_sign_in_at DATETIME",
    ],
    9: [
        # Self-check kiosks (issue 15, node/sip2/): the accounts kiosks log in
        # with (93), passwords hashed like staff passwords.
        """CREATE TABLE sip2_account (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            location TEXT NOT NULL DEFAULT '',
            active INTEGER NOT NULL DEFAULT 1,
            created_at DATETIME NOT NULL,
            last_login_at DATETIME)""",
        # A "no block" checkout or checkin a kiosk stored while the node was
        # down, applied once: its key is written in the transaction that
        # applies it, so a re-sent one is refused by the primary key.
        """CREATE TABLE applied_once (
            key TEXT PRIMARY KEY,
            applied_at DATETIME NOT NULL)""",
        "CREATE INDEX applied_once_applied_at ON applied_once (applied_at)",
    ],
    10: [
        # The cashier (issue 14, point 8): how a patron paid, for the payment receipt.
        "ALTER TABLE fee_payment ADD COLUMN method TEXT NOT NULL DEFAULT ''",
    ],
    11: [
        # Barcodes found whatever their case ([desk] barcode_case, node/domain/barcodes.py):
        # the lookups compare with COLLATE NOCASE, which only these indexes answer without a scan.
        "CREATE INDEX item_owner_barcode_nocase ON item (owner, barcode COLLATE NOCASE)",
        "CREATE INDEX item_barcode_nocase ON item (barcode COLLATE NOCASE)",
        # The desk's patron search by id, whatever the institution (node/domain/search.py).
        "CREATE INDEX patron_home_id_nocase ON patron (home_id COLLATE NOCASE)",
    ],
}


def current_version(db):
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at DATETIME NOT NULL)")
    row = db.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(db, target=None):
    """Apply every migration above the database's version, each atomically."""
    target = target or max(MIGRATIONS)
    version = current_version(db)
    for number in sorted(MIGRATIONS):
        if version < number <= target:
            with db.atomic():
                for statement in MIGRATIONS[number]:
                    db.execute_sql(statement)
                db.execute_sql("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                               (number, datetime.datetime.now(datetime.timezone.utc).isoformat()))
            log.info("applied schema migration %d", number)
    return target
