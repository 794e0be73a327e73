"""What people and programs read: tables, graphviz source, figures, data frames."""
