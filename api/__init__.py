"""The Django project: settings, URLs and the tenancy, datasets and jobs apps."""
