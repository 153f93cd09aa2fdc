from dealdesk.cli import app

app()
