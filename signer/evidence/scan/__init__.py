"""`modelsign scan`: unpack an artifact safely, run trivy and the model-file check, and turn
the result into a cosign vulnerability predicate."""
