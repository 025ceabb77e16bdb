"""The ``notifications`` projection and its e-mail delivery."""
