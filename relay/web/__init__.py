"""Flask: intake routes (parse -> persist -> answer), health and status, the admin API."""
