"""Who a patron is: SAML sign-in at the patron's own institution, the SP's keys and metadata, the federation, the phone link.

Below the web and the CLI, beside the protocol (sync/); it may use the domain and the store, never the other way.
"""
