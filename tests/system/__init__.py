"""The system tier: what deploy/ ships, run as a kubelet would, over its lifecycle."""
