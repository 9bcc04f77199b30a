using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Baseline;

/// <summary>Section <c>Baseline</c>: which model of a model repository (the worker's layout) the endpoint runs.</summary>
public sealed class BaselineOptions
{
    public const string Section = "Baseline";

    /// <summary>The model repository (<c>models/</c>: one folder per model and version).</summary>
    [Required]
    public string ModelsPath { get; set; } = "models";

    /// <summary><c>name</c> or <c>name@version</c> of an <c>image.embed</c> model.</summary>
    [Required]
    public string Model { get; set; } = "resnet18";
}
