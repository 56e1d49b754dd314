"""One Pulumi ComponentResource per RA layer. Each takes typed args and owns its children."""
