"""The conditional single-image GAN: label decoding, networks, losses, training, synthesis."""
