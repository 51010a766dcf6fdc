"""bihm-app: Bidirectional Helmholtz Machines — engine, CLI (`bihm`) and dashboard (`bihm-app`)."""

__version__ = "0.1.0"
