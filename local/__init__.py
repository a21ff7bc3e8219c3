"""The embedded local stack: moto server, local inference server, local API and the demo."""
