terraform {
  # 1.5 brings `check` blocks and the validation features used in variables.tf.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned to the provider release this configuration is validated against
      # (`terraform validate` with 5.100.0 runs in the test suite). The 6.x line
      # renames several arguments (e.g. per-resource `region`), so moving to it is
      # a deliberate upgrade, not something `init -upgrade` should do silently.
      version = "~> 5.100"
    }
  }

  # State: local by default, one workspace per environment (`make tf-plan ENV=dev`
  # selects workspace "dev"). For a team, add an S3 backend here, e.g.
  #   backend "s3" { bucket = "..." key = "ezspeech/terraform.tfstate" region = "..." use_lockfile = true }
  # and re-run `terraform init -migrate-state`; workspaces keep working with it.
}
