"""Where Kubernetes objects come from: manifest files (``files``) or a cluster (``kube``)."""
