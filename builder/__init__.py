"""Image toolkit: render templates/ into generated/, bootstrap bases, build and check images."""
