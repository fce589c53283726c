"""KitOps ModelKits: recognise them, read their Kitfile, and pack a directory into one."""
