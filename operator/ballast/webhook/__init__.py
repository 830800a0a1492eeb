"""Ballast's admission webhook, served by every operator replica over TLS.

``mutate`` and ``validate`` are pure functions from an AdmissionReview
request and a :class:`~ballast.webhook.view.ClusterView` to a response;
``certs`` makes and rotates the CA and serving certificate (pure, the Secret
round trip is in ``service``); ``config`` builds the Mutating and Validating
WebhookConfigurations; ``server`` is the HTTPS listener; ``service`` ties
them together in a thread beside kopf. See docs/webhook.md.
"""
