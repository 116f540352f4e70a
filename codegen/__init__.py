"""Code generation: reads the project's contracts and writes typed models and codecs to target/."""
