"""The validating admission webhook (``--validating-webhook``): Ingresses (and the controller
ConfigMap, ``--nginx-configmap``) judged at ``kubectl apply``.

``review`` reads an ``admission.k8s.io/v1`` AdmissionReview and writes the answer (pure
functions); ``judge`` gives the verdict ``ingressd check`` gives, against the server's current
objects, and the controller ConfigMap as the server reads it; ``certificate`` serves the webhook's certificate, read again when its files change;
``endpoint`` is the HTTPS listener's request handler. Nothing is executed or templated.
"""
