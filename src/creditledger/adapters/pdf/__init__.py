"""Documents as PDF: the invoice (``invoice.render_invoice``), drawn with fpdf2."""
