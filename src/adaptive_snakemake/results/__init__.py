"""What is produced: result.json per learner, results/summary.csv, one picture per sweep."""
