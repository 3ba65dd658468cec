"""Model parts of CAM-Seg: autoencoder, masked autoregressive transformer, diffusion head."""
