"""dip-edge: all logic of the function app, usable without the Functions host."""
