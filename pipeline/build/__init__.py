"""Building: config -> SageMaker `Pipeline`, its code bundle, wheelhouse, images and parameters."""
