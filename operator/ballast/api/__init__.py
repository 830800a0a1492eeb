"""The Ballast API: custom resources (``ballast.dev/v1alpha1``) and well-known keys."""
