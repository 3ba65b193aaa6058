"""VerifyRM: the one input template, the model, pointwise pre-training and RM evaluation."""
