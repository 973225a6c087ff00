"""gandist: distributed GAN training on Ray Train from WebDataset shards."""

__version__ = "0.1.0"
