"""Generator and discriminator networks: plain torch.nn, independent of data and distribution."""

from gandist.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_weights
from gandist.models.pix2pix import PatchDiscriminator, PixelDiscriminator, UNetGenerator
from gandist.models.r3gan import R3GANDiscriminator, R3GANGenerator
from gandist.models.unet import UNet

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "PatchDiscriminator", "PixelDiscriminator", "R3GANDiscriminator",
           "R3GANGenerator", "UNet",
           "UNetGenerator", "init_weights"]
