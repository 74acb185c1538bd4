"""Pulumi components: one per platform service, each creating what the platform model describes."""
