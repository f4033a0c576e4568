"""Who a patron is: SAML sign-in at the patron's own institution, the SP's keys and metadata, the
federation's aggregate, and the phone link that carries a sign-in from the patron's phone to the desk.

Below the web and the CLI, beside the protocol (``sync/``): it may use the domain and the store, and
neither of those imports it (``.importlinter``).
"""
