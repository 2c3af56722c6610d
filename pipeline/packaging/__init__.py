"""What each runtime loads: the Jetson bundle, a Triton model repository, a SageMaker
model.tar.gz, plus the model card and the HTML report. One module per format."""
