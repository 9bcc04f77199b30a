using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Models;

/// <summary>Section <c>Serving:Models</c>.</summary>
public sealed class ModelRepositoryOptions
{
    public const string Section = "Serving:Models";

    /// <summary>The model repository folder, relative to the content root unless absolute.</summary>
    [Required]
    public string Path { get; set; } = "models";

    /// <summary>Whether every listed model must have its <c>model.onnx</c> (workers: yes; the API reads configs only).</summary>
    public bool RequireWeights { get; set; }
}
