"""Server-rendered pages for people: sign-up, sign-in and the team's Billing page."""
