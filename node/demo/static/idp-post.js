// The demo IdP's answer goes back to the library at once, as the SAML HTTP-POST binding does;
// without JavaScript the page shows a Continue button instead.
document.forms[0].submit();
