"""A real mail server's handler, for notices sent over SMTP on loopback."""
import email
import email.policy


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                          policy=email.policy.default)))
        return "250 OK"

    def kinds(self):
        return [message["X-Circnode-Notice"] for _, message in self.messages]
