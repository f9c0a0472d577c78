"""The compatibility contract with ingress-nginx: the annotation catalogue, the fail-closed
assessment of each Ingress, and ``ingressd check`` with its lint rules."""
