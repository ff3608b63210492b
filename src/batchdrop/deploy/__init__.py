"""Deployment: batchdrop.yaml → a least-privilege CloudFormation stack, its Lambda package, and
the commands that create, update and delete it."""
