"""The DIP's side of the edge: message signature, delivery envelope and the inbox."""
