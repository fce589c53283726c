"""The policy engine boundary: Rego in-process (regopy) or an OPA server, with every value
crossing between Python and Rego checked and encoded (`values`, `regocpp`)."""
